#!/bin/sh
# Runs libFuzzer targets, each for FUZZ_SECONDS (default 60), starting from
# a fresh copy of its checked-in seed corpus in a temporary directory, and
# prints per target the executions, executions per second and libFuzzer's
# final coverage (cov: edges, ft: features). Exits non-zero if any target
# found a crash, a leak or a timeout; what it found is kept in
# BINDIR/artifacts/ with the tail of its log.
#
#   tests/fuzz/run.sh BINDIR CORPUSDIR TARGET...     (make fuzz-run does this)
#
# FUZZ_FLAGS adds libFuzzer flags, e.g. FUZZ_FLAGS=-jobs=2.
set -u

if [ $# -lt 3 ]; then
	echo "usage: $0 BINDIR CORPUSDIR TARGET..." >&2
	exit 2
fi
bindir=$1
corpus=$2
shift 2
secs=${FUZZ_SECONDS:-60}
case $secs in
'' | *[!0-9]*)
	echo "$0: FUZZ_SECONDS must be a number of seconds, not '$secs'" >&2
	exit 2
	;;
esac

# tmpfs when there is one: the users target writes a file per input.
base=${TMPDIR:-}
if [ -z "$base" ]; then
	base=/tmp
	[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
fi
work=$(mktemp -d "$base/mgrok-fuzz-run.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
artifacts=$bindir/artifacts
mkdir -p "$artifacts" || exit 1

failed=0
summary=$work/summary
printf '%-20s %12s %9s %7s %8s  %s\n' target execs exec/s cov ft result >"$summary"
for target in "$@"; do
	bin=$bindir/$target
	if [ ! -x "$bin" ]; then
		echo "$0: $bin is missing (make fuzz)" >&2
		failed=1
		continue
	fi
	dir=$work/$target
	mkdir -p "$dir/corpus" "$dir/tmp"
	# The seeds only: a crash-* reproducer would end the run at once.
	for f in "$corpus/$target"/*; do
		case ${f##*/} in crash-*) continue ;; esac
		[ -f "$f" ] && cp "$f" "$dir/corpus/"
	done
	log=$dir/log
	echo "=== $target: $secs s"
	# stdin from /dev/null: an input naming /dev/stdin as a file must not wait.
	# -close_fd_mask=2 silences the target's stderr (its debug log) but not
	# libFuzzer's report or a violated property (fuzz.h). Scaling by exec
	# time keeps the session target's megabyte inputs (a full output queue)
	# from taking most of the time.
	# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
	TMPDIR=$dir/tmp UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
		-print_final_stats=1 -close_fd_mask=2 -entropic_scale_per_exec_time=1 \
		-artifact_prefix="$artifacts/$target-" \
		${FUZZ_FLAGS:-} "$dir/corpus" </dev/null >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	result=ok
	if [ "$rc" -ne 0 ]; then
		result="FAILED (exit $rc)"
		failed=1
		cp "$log" "$artifacts/$target.log"
		echo "--- $target failed; the end of its log ($artifacts/$target.log):"
		grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$log" | tail -n 60
		echo "--- inputs kept:"
		found=
		for a in "$artifacts/$target"-*; do
			[ -e "$a" ] && found=1 && echo "$a"
		done
		[ -n "$found" ] || echo "(none)"
	fi
	printf '%-20s %12s %9s %7s %8s  %s\n' "$target" "${execs:-?}" "${speed:-?}" "${cov:-?}" \
		"${ft:-?}" "$result" | tee -a "$summary"
done
echo
cat "$summary"
exit $failed

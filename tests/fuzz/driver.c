/*
 * A main for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput
 * once on each file named, or on every file of each directory named, in
 * name order. Without arguments it replays the target's checked-in corpus,
 * FUZZ_CORPUS_ROOT/FUZZ_TARGET (set by Makefile.am), which is what make
 * check does. A violated property aborts; no input at all is an error too, so
 * that a corpus that went missing does not pass unnoticed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0, got;
	uint8_t *data = malloc(cap), *more;
	while (data && (got = fread(data + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len < cap)
			continue;
		if (!(more = realloc(data, cap *= 2)))
			free(data);
		data = more;
	}
	int bad = !data || ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "%s: cannot read\n", path);
		free(data);
		return -1;
	}
	/* An exact-size copy, so that a read past the input's end is caught. */
	uint8_t *exact = malloc(len ? len : 1);
	memcpy(exact, data, len);
	free(data);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Runs path, a file or a directory of files; returns the inputs run, or -1. */
static long run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path) < 0 ? -1 : 1;
	struct dirent **names;
	int n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	long count = 0;
	for (int i = 0; i < n; i++) {
		char file[4096];
		snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(file) < 0)
				count = -1;
			else if (count >= 0)
				count++;
		}
		free(names[i]);
	}
	free(names);
	return count;
}

int main(int argc, char **argv)
{
	static char *corpus[] = {NULL, FUZZ_CORPUS_ROOT "/" FUZZ_TARGET};
	if (argc < 2) {
		argc = 2;
		argv = corpus;
	}
	long total = 0;
	for (int i = 1; i < argc; i++) {
		long n = run_path(argv[i]);
		if (n < 0)
			return 1;
		printf("%s: %ld input%s\n", argv[i], n, n == 1 ? "" : "s");
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "no inputs\n");
		return 1;
	}
	return 0;
}

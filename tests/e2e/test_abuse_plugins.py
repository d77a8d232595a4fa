#!/usr/bin/env python3
"""Plugins come only from plugin_dir, and every configuration error is exit
status 2, with and without --check.

a. "plugins" entries that climb out of plugin_dir ("../..."), absolute paths
   and names with a "/" are refused as a config error naming the entry
   (FILE:LINE:COL: plugins[N]: ...), exit 2, before anything is loaded: the
   test library tests/unit/ctor.so, whose constructor creates the file named
   by MGROK_CTOR_MARK, never runs; the same for the C library by a relative
   path (the case of the report), for mgrokd and mgrok, --check or not.
b. The exit statuses are listed by --help of both programs.
c. A plugin inside plugin_dir that cannot be loaded (not a shared object,
   missing, no entry symbol), named or found by the directory scan, is exit
   2 with and without --check, and the message names the file.
d. Other configuration errors: a users file that is a directory ("is a
   directory"), an integer too large for the JSON parser (named by its key),
   TLS files that cannot be read: exit 2 both ways.  A control port that
   cannot be bound is a failure at run time: exit 1."""
import os
import re
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "abuse-plugins-token-0d7e"
RUN_TIMEOUT = 20  # a program that starts instead of refusing its config is stopped then
CTOR_SOURCE = os.path.join(t.SRCDIR, "tests", "unit", "ctor_plugin.c")
REPORTED = "../../../../lib/x86_64-linux-gnu/libc.so.6"  # the entry of the report
NAME_RULE = 'must be a file name inside plugin_dir (no "/", no "..")'


def ctor_library(env):
    """The path of ctor.so: built by make check (check_LTLIBRARIES), or by
    MGROK_CTOR_PLUGIN, or compiled here from its source if neither exists
    (a build without Check)."""
    path = os.environ.get("MGROK_CTOR_PLUGIN") or os.path.join(t.BUILDDIR, "tests", "unit",
                                                               ".libs", "ctor.so")
    if os.path.isfile(path):
        return path
    path = os.path.join(env.dir, "built", "ctor.so")
    os.makedirs(os.path.dirname(path))
    cc = os.environ.get("CC", "cc").split()
    code, out, err = env.run_program(cc + ["-shared", "-fPIC", "-o", path, CTOR_SOURCE])
    t.check_eq(code, 0, "compiling %s" % CTOR_SOURCE, stderr=err)
    return path


def libc_path():
    """The C library this Python runs with (the one mgrokd would load)."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and re.search(r"/libc[.-][^/]*so", fields[-1]):
                return fields[-1]
    raise t.TestFailure("no libc in /proc/self/maps")


def run(env, argv, mark=None, cwd=None):
    """(exit code, stdout, stderr) of a program expected to stop at once; a
    program still running after RUN_TIMEOUT has started: exit code None."""
    extra = {"MGROK_CTOR_MARK": mark} if mark else {}
    full_env = dict(os.environ)
    full_env.update(extra)
    t.log("run: %s" % " ".join(str(a) for a in argv))
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                         start_new_session=True, cwd=cwd)
    try:
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        code = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, err = p.communicate()
        code = None
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def server_config(env, name, port, plugins=None, plugin_dir=None, **more):
    conf = {"listen": "127.0.0.1:%d" % port,
            "auth": {"method": "token", "token": TOKEN},
            "allow_ports": ["%d-%d" % (port + 1, port + 1)]}
    if plugin_dir:
        conf["plugin_dir"] = plugin_dir
    if plugins is not None:
        conf["plugins"] = plugins
    conf.update(more)
    return t.write_json(env, name, conf)


def client_config(env, name, port, plugins=None, plugin_dir=None):
    conf = {"server": "127.0.0.1:%d" % port,
            "auth": {"method": "token", "token": TOKEN},
            "proxies": [{"name": "web", "type": "tcp", "local": "127.0.0.1:9"}]}
    if plugin_dir:
        conf["plugin_dir"] = plugin_dir
    if plugins is not None:
        conf["plugins"] = plugins
    return t.write_json(env, name, conf)


def expect_config_error(env, prog, path, what, key=None, text=None, mark=None, cwd=None):
    """prog -c path, with and without --check: exit 2, a FILE:LINE:COL:
    message naming key (and containing text), and no mark file."""
    for check_only in (True, False):
        argv = [prog, "-c", path] + (["--check"] if check_only else [])
        label = "%s (%s%s)" % (what, os.path.basename(prog), " --check" if check_only else "")
        if mark and os.path.exists(mark):
            os.unlink(mark)
        code, out, err = run(env, argv, mark, cwd)
        loaded = mark and os.path.exists(mark)
        t.check(not loaded, "%s: the library was loaded: its constructor ran" % label,
                code=code, stderr=err[-400:])
        t.check(code is not None, "%s: the program started instead of refusing its config"
                % label)
        t.check_eq(code, 2, "exit code of %s" % label, stderr=err[-600:])
        if key:
            m = re.search(r"%s:(\d+):(\d+): %s: " % (re.escape(path), re.escape(key)), err)
            t.check(m, "%s: no '%s:LINE:COL: %s:' in the message" % (label, path, key),
                    stderr=err[-600:])
        if text:
            t.check(text in err, "%s: %r not in the message" % (label, text), stderr=err[-600:])


# ---- a. names outside plugin_dir -----------------------------------------------------------


def outside_plugin_dir(env, ctor):
    port = env.ports.take(2)
    mark = os.path.join(env.dir, "ctor-ran")
    # A private plugin dir: the real plugins, and ctor.so one level down.
    pdir = os.path.join(env.dir, "plugins")
    os.makedirs(os.path.join(pdir, "sub"))
    for name in ("tcp.so", "auth-token.so"):
        os.symlink(os.path.join(t.PLUGIN_DIR, name), os.path.join(pdir, name))
    shutil.copy(ctor, os.path.join(pdir, "sub", "ctor.so"))
    libc = libc_path()
    # The report's path, four levels up from plugin_dir, leads to the marker.
    deep = os.path.join(env.dir, "d1", "d2", "d3", "d4")
    os.makedirs(deep)
    for name in ("tcp.so", "auth-token.so"):
        os.symlink(os.path.join(t.PLUGIN_DIR, name), os.path.join(deep, name))
    fake_libc = os.path.normpath(os.path.join(deep, REPORTED))
    os.makedirs(os.path.dirname(fake_libc))
    shutil.copy(ctor, fake_libc)
    cases = [
        ("a relative path out of plugin_dir", pdir, os.path.relpath(ctor, pdir)),
        ("an absolute path", pdir, os.path.abspath(ctor)),
        ("a name with a '/' inside plugin_dir", pdir, "sub/ctor.so"),
        ("'./' and a name", pdir, "./sub/ctor.so"),
        ("libc by a relative path", t.PLUGIN_DIR, os.path.relpath(libc, t.PLUGIN_DIR)),
        ("the report's path", deep, REPORTED),
        ("'..' alone", pdir, ".."),
    ]
    # Run from plugin_dir, so that a relative path leads to the same file
    # whether a program resolves it from there or from its working directory.
    for i, (what, plugin_dir, entry) in enumerate(cases):
        t.check(entry.startswith("..") or "/" in entry, "a case that names no path", entry=entry)
        with env.case("a: " + what):
            plugins = ["tcp.so", "auth-token.so", entry]
            expect_config_error(env, t.MGROKD,
                                server_config(env, "mgrokd-out-%d.json" % i, port, plugins,
                                              plugin_dir),
                                "mgrokd with plugins[2] = %r" % entry, "plugins[2]", NAME_RULE,
                                mark, plugin_dir)
            expect_config_error(env, t.MGROK,
                                client_config(env, "mgrok-out-%d.json" % i, port,
                                              [entry, "tcp.so", "auth-token.so"], plugin_dir),
                                "mgrok with plugins[0] = %r" % entry, "plugins[0]", NAME_RULE,
                                mark, plugin_dir)
    # The same library by its file name inside plugin_dir is loaded: the
    # mark works (so its absence above means something).
    shutil.copy(ctor, os.path.join(pdir, "ctor.so"))
    with env.case("a: the marker library by name inside plugin_dir"):
        path = server_config(env, "mgrokd-in.json", port, ["tcp.so", "auth-token.so", "ctor.so"],
                             pdir)
        code, out, err = run(env, [t.MGROKD, "-c", path, "--check"], mark)
        t.check(os.path.exists(mark), "ctor.so loaded from plugin_dir left no mark: the test "
                "cannot see a load", stderr=err[-400:])
        t.check_eq(code, 2, "exit code of mgrokd --check with a library that is not a plugin",
                   stderr=err[-400:])
        t.check("ctor.so" in err, "the error names the file", stderr=err[-400:])
    t.log("a: %d entries outside plugin_dir checked for mgrokd and mgrok" % len(cases))


# ---- b. the exit status table ----------------------------------------------------------------


def help_table(env):
    for prog in (t.MGROKD, t.MGROK):
        name = os.path.basename(prog)
        code, out, err = env.run_program([prog, "--help"])
        t.check_eq(code, 0, "%s --help exit code" % name, stderr=err)
        m = re.search(r"exit status[^\n]*\n((?:[ \t]+\S.*\n?)+)", out)
        t.check(m, "%s --help has no exit status table" % name, stdout=out[-800:])
        table = m.group(1)
        t.check("--check" in m.group(0).splitlines()[0],
                "%s --help: the table does not say it holds with and without --check" % name,
                table=m.group(0))
        for status, words in (("0", "success"), ("1", "run time"),
                              ("2", "configuration error")):
            row = re.search(r"^\s+%s\s+(.*(?:\n\s{4,}\D.*)*)" % status, table, re.M)
            t.check(row and words in row.group(1).replace("\n", " "),
                    "%s --help: no row for exit status %s (%r)" % (name, status, words),
                    table=table)
    t.log("b: --help of both programs lists exit statuses 0, 1, 2")


# ---- c. plugins that cannot be loaded ------------------------------------------------------


def unloadable(env, ctor):
    port = env.ports.take(2)
    pdir = os.path.join(env.dir, "plugins-bad")
    os.makedirs(pdir)
    for name in ("tcp.so", "auth-token.so"):
        os.symlink(os.path.join(t.PLUGIN_DIR, name), os.path.join(pdir, name))
    with open(os.path.join(pdir, "junk.so"), "w") as f:
        f.write("not a shared object\n")
    shutil.copy(ctor, os.path.join(pdir, "noentry.so"))
    for what, entry in (("a file that is not a shared object", "junk.so"),
                        ("a missing file", "missing.so"),
                        ("a shared object without the entry symbol", "noentry.so")):
        with env.case("c: " + what):
            path = server_config(env, "mgrokd-%s.json" % entry.split(".")[0], port,
                                 ["tcp.so", "auth-token.so", entry], pdir)
            expect_config_error(env, t.MGROKD, path, "mgrokd with %s" % what, text=entry)
            path = client_config(env, "mgrok-%s.json" % entry.split(".")[0], port,
                                 ["tcp.so", "auth-token.so", entry], pdir)
            expect_config_error(env, t.MGROK, path, "mgrok with %s" % what, text=entry)
    with env.case("c: a bad file found by the directory scan"):
        path = server_config(env, "mgrokd-scan.json", port, None, pdir)
        expect_config_error(env, t.MGROKD, path, "mgrokd scanning a directory with junk.so",
                            text="junk.so")
    t.log("c: plugins that cannot be loaded checked")


# ---- d. other configuration errors, and a failure at run time ------------------------------


def other_errors(env):
    port = env.ports.take(2)
    with env.case("d: a users file that is a directory"):
        path = server_config(env, "mgrokd-usersdir.json", port,
                             auth={"method": "users", "file": env.dir})
        expect_config_error(env, t.MGROKD, path, "a users file that is a directory",
                            text="is a directory")
    with env.case("d: an integer too large"):
        path = env.write_file("mgrokd-bigint.json", "\n".join([
            '{',
            '  "listen": "127.0.0.1:%d",' % port,
            '  "auth": {"method": "token", "token": "%s"},' % TOKEN,
            '  "limits": {"max_streams": 123456789012345678901234567890}',
            '}']) + "\n")
        expect_config_error(env, t.MGROKD, path, "an integer too large", "limits.max_streams",
                            "integer too large")
    with env.case("d: TLS files that cannot be read"):
        path = server_config(env, "mgrokd-tls.json", port,
                             tls={"cert": os.path.join(env.dir, "no-cert.pem"),
                                  "key": os.path.join(env.dir, "no-key.pem")})
        expect_config_error(env, t.MGROKD, path, "TLS files that do not exist",
                            text="no-cert.pem")
    with env.case("d: the control port in use"):
        busy = socket.socket()
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        try:
            path = server_config(env, "mgrokd-busy.json", port)
            code, out, err = run(env, [t.MGROKD, "-c", path, "--check"])
            t.check_eq(code, 0, "mgrokd --check with a busy control port (nothing is bound)",
                       stderr=err[-400:])
            code, out, err = run(env, [t.MGROKD, "-c", path])
            t.check_eq(code, 1, "exit code of mgrokd whose control port is in use",
                       stderr=err[-400:])
        finally:
            busy.close()
    t.log("d: other config errors and a busy control port checked")


def main(env):
    ctor = ctor_library(env)
    t.log("marker library: %s" % ctor)
    outside_plugin_dir(env, ctor)
    with env.case("b: the exit status table of --help"):
        help_table(env)
    unloadable(env, ctor)
    other_errors(env)


t.run(main)

#!/usr/bin/env python3
"""The manual pages in doc/man: clean under mandoc -T lint, and in step with
what they describe, read from the programs and the sources each time:

  - mgrokd.8 and mgrok.1 list as ".It Fl" lines of OPTIONS exactly the long
    options of --help, with their short forms;
  - mgrokd.json.5 and mgrok.json.5 have as ".It Ic" items exactly the keys
    the loaders accept: the field tables of core/config.c (a nested key
    written with its section, "limits.max_streams"; the members of each
    element of "proxies" in PROXIES), the http and tls_sni sections of the
    vhost plugins, the proxy types' options (PROXY OPTIONS, one .Ss a type),
    the auth methods' options (AUTHENTICATION, one .Ss a method) and the
    users file's keys (USERS FILE); and their full example has every key;
  - mgrok-plugin.7 has as ".It Fn" items exactly the function pointers of
    include/mgrok/plugin.h, each struct's in its section, and a line for
    every ABI version of the header's changelog.

A key or option added to the code without a line in its page, or a line
left behind by one removed, fails here with the page and the name."""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

MAN = os.path.join(t.SRCDIR, "doc", "man")
PAGES = ("mgrokd.8", "mgrok.1", "mgrokd.json.5", "mgrok.json.5", "mgrok-plugin.7")

# The field tables the loaders start from, and the page of each.
ROOT_TABLES = {"server_fields": "mgrokd.json.5", "client_fields": "mgrok.json.5"}
# Keys whose value is an array of objects: the members of an element are
# documented in a section of their own, without the key's name.
ELEMENT_SECTIONS = {"proxies": "PROXIES"}
# The structs of plugin.h with function pointers, and their sections.
PLUGIN_STRUCTS = {
    "mgrok_plugin_desc": "PLUGIN DESCRIPTOR",
    "mgrok_host": "HOST FUNCTIONS",
    "mgrok_proxy_ops": "PROXY OPERATIONS",
    "mgrok_auth_ops": "AUTH OPERATIONS",
}


def src(*parts):
    with open(os.path.join(t.SRCDIR, *parts)) as f:
        return f.read()


def page(name):
    with open(os.path.join(MAN, name)) as f:
        return f.read()


# ---- reading the pages --------------------------------------------------------


def items(text, macro):
    """{(section, subsection or None): [(name, the whole .It line)]} of the
    ".It <macro> NAME" lines of a page (".It NAME" for macro None), nested
    lists included."""
    found = {}
    sh = ss = None
    for line in text.splitlines():
        m = re.match(r"\.Sh (.+)", line)
        if m:
            sh, ss = m.group(1).strip(), None
            continue
        m = re.match(r"\.Ss (.+)", line)
        if m:
            ss = m.group(1).strip()
            continue
        m = re.match(r"\.It %s(\S+)" % (macro + " " if macro else ""), line)
        if m:
            found.setdefault((sh, ss), []).append((m.group(1), line))
    return found


def names(found, section, subsection=None):
    return {n for n, _ in found.get((section, subsection), [])}


def literal_blocks(text, section):
    """The .Bd -literal blocks of one section, as text."""
    m = re.search(r"^\.Sh %s\n(.*?)(?=^\.Sh |\Z)" % re.escape(section), text, re.S | re.M)
    t.check(m, "no section %s" % section)
    return re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed", m.group(1), re.S | re.M)


def compare(where, documented, expected, source):
    missing = sorted(expected - documented)
    stale = sorted(documented - expected)
    t.check(not missing, "%s: not documented, but %s has them: %s" % (where, source, missing))
    t.check(not stale, "%s: documented, but %s has no such thing: %s" % (where, source, stale))


# ---- reading the C sources ------------------------------------------------------


def functions(text):
    """{name: body} of the functions defined in a C file (a definition
    starts at column 0 and its body ends at a "}" alone on a line)."""
    out = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.search(r"[ *](\w+)\(", line)
        if (m and re.match(r"[A-Za-z_]", line) and not line.startswith("#")
                and not line.rstrip().endswith(";") and "=" not in line.split("(")[0]):
            j = i
            while j < len(lines) and lines[j] != "}":
                j += 1
            out[m.group(1)] = "\n".join(lines[i:j + 1])
            i = j
        i += 1
    return out


def strcmp_keys(body):
    return set(re.findall(r'strcmp\(key, "(\w+)"\)', body))


def function_keys(path, name):
    """The keys a function of the sources compares its key with."""
    body = functions(src(*path)).get(name)
    t.check(body, "%s: no function %s (the test reads its keys there)" % ("/".join(path), name))
    keys = strcmp_keys(body)
    t.check(keys, "%s: %s compares no key" % ("/".join(path), name))
    return keys


def field_tables(text):
    """{table: [(key, take function, sub-table or None)]} of config.c."""
    tables = {}
    for m in re.finditer(r"static const struct field (\w+)\[\] = \{(.*?)\};", text, re.S):
        rows = []
        for r in re.finditer(r'\{\s*"(\w+)",\s*(\w+),\s*([^{}]*)\}', m.group(2)):
            last = r.group(3).split(",")[-1].strip()
            rows.append((r.group(1), r.group(2), last if re.match(r"^\w+$", last) and
                         last not in ("NULL", "0") else None))
        tables[m.group(1)] = rows
    return tables


def table_parents(tables, funcs, name):
    """[(table, key)] under which table name is walked: the rows naming it,
    else the rows whose take function reaches code naming it (a section
    both files have, such as "admin", is walked from both root tables)."""
    found = [(tab, key) for tab, rows in tables.items() for key, _, sub in rows if sub == name]
    if found:
        return found
    reach = {f for f, body in funcs.items() if re.search(r"\b%s\b" % name, body)}
    for _ in range(4):
        found = [(tab, key) for tab, rows in tables.items() for key, take, _ in rows
                 if take in reach]
        if found:
            return found
        reach |= {f for f, body in funcs.items()
                  if any(re.search(r"\b%s\(" % g, body) for g in reach)}
    return []


def config_keys():
    """{page: {section: set of keys}} of core/config.c's tables (and
    config_sections.c's)."""
    text = src("core", "config.c") + src("core", "config_sections.c")
    tables, funcs = field_tables(text), functions(text)
    t.check(set(ROOT_TABLES) <= set(tables), "core/config.c: no table %s" %
            sorted(set(ROOT_TABLES) - set(tables)))
    out = {p: {} for p in ROOT_TABLES.values()}

    def places(name):
        """[(page, section, prefix)] of a table's keys."""
        if name in ROOT_TABLES:
            return [(ROOT_TABLES[name], "KEYS", "")]
        parents = table_parents(tables, funcs, name)
        t.check(parents, "core/config.c: cannot tell where table %s is read: say in %s" %
                (name, os.path.basename(__file__)))
        out = []
        for tab, key in parents:
            for pg, section, prefix in places(tab):
                if key in ELEMENT_SECTIONS:
                    out.append((pg, ELEMENT_SECTIONS[key], ""))
                else:
                    out.append((pg, section, prefix + key + "."))
        return out

    for name, rows in tables.items():
        for pg, section, prefix in places(name):
            out[pg].setdefault(section, set()).update(prefix + key for key, _, _ in rows)
    return out


def vhost_keys():
    """{"http.listen", ...}: the keys of mgrokd.json's proxy plugin sections
    (config.c's proxy_sections), which plugins/common/vhost.c reads, with
    each plugin's own timeout key."""
    m = re.search(r"proxy_sections\[\] = \{(.*?)\};", src("core", "config.c"), re.S)
    t.check(m, "core/config.c: no proxy_sections table")
    sections = re.findall(r'\{"(\w+)", "(\w+)"\}', m.group(1))
    t.check(sections, "core/config.c: proxy_sections is empty")
    common = function_keys(("plugins", "common", "vhost.c"), "take_conf")
    keys = set()
    for section, plugin in sections:
        own = re.findall(r'\.timeout_key = "(\w+)"', src("plugins", plugin, plugin + ".c"))
        t.check(own, "plugins/%s/%s.c: no timeout_key" % (plugin, plugin))
        keys |= {"%s.%s" % (section, k) for k in common | set(own)}
    return keys


def proxy_option_keys():
    """{type: set of REGISTER options} of the udp, http and tls plugins."""
    vhost = function_keys(("plugins", "common", "vhost.c"), "vhost_check_options")
    out = {"udp": function_keys(("plugins", "udp", "udp.c"), "parse_options")}
    for plugin in ("http", "tls"):
        text = src("plugins", plugin, plugin + ".c")
        t.check("vhost_init(" in text, "plugins/%s/%s.c no longer uses vhost.c" % (plugin, plugin))
        own = strcmp_keys(functions(text).get("check_option", ""))
        out[plugin] = vhost | own
    t.check("tcp proxies take no options" in src("plugins", "tcp", "tcp.c"),
            "plugins/tcp/tcp.c: tcp proxies take options now: document them")
    return out


def auth_option_keys():
    """{(page, method): set of options}."""
    m = re.search(r"option_keys\[\] = \{(.*?)\};", src("plugins", "auth-common", "auth_secret.c"),
                  re.S)
    t.check(m, "plugins/auth-common/auth_secret.c: no option_keys")
    secret = set(re.findall(r'"(\w+)"', m.group(1)))
    users = function_keys(("plugins", "auth-users", "auth_users.c"), "parse_options")
    t.check("file" in users, "auth_users.c: the server's \"file\" option is gone")
    return {
        ("mgrokd.json.5", "none"): set(),
        ("mgrokd.json.5", "token"): secret,
        ("mgrokd.json.5", "users"): {"file"},
        ("mgrok.json.5", "none"): set(),
        ("mgrok.json.5", "token"): secret,
        ("mgrok.json.5", "users"): (users - {"file"}) | secret,
    }


# ---- the checks -------------------------------------------------------------------


def lint(env):
    mandoc = shutil.which("mandoc")
    t.check(mandoc, "mandoc is not installed (./bootstrap installs it: apt-get install mandoc)")
    for name in PAGES:
        code, out, err = env.run_program([mandoc, "-T", "lint", "-W", "warning",
                                          os.path.join(MAN, name)])
        t.check(code == 0 and not (out + err).strip(),
                "mandoc -T lint -W warning %s is not clean" % name, code=code,
                output=(out + err).strip())
    t.log("mandoc -T lint: %d pages clean" % len(PAGES))


def help_options(env, prog):
    """{long option: its short letter or None} of prog --help."""
    code, out, err = env.run_program([prog, "--help"])
    t.check_eq(code, 0, "%s --help" % prog, stderr=err)
    opts = {}
    for line in out.splitlines():
        m = re.match(r"\s+(?:-([A-Za-z]), )?--([a-z][a-z0-9-]*)", line)
        if m:
            opts[m.group(2)] = m.group(1)
    t.check(len(opts) > 5, "%s --help: too few options read" % prog, stdout=out)
    return opts


def options(env):
    for name, prog in (("mgrokd.8", t.MGROKD), ("mgrok.1", t.MGROK)):
        want = help_options(env, prog)
        lines = [line for _, line in items(page(name), "Fl").get(("OPTIONS", None), [])]
        documented = {}
        for line in lines:
            shorts = re.findall(r"\bFl ([A-Za-z])(?=\s|$)", line)
            for long_opt in re.findall(r"\bFl \\?-([a-z][a-z0-9-]*)", line):
                documented[long_opt] = shorts[0] if shorts else None
        with env.case("%s: OPTIONS against --help" % name):
            compare("%s OPTIONS (.It Fl \\-OPTION)" % name, set(documented), set(want),
                    "%s --help" % os.path.basename(prog))
            for opt, short in sorted(want.items()):
                t.check_eq(documented[opt], short, "%s: the short form of --%s" % (name, opt))
        t.log("%s: %d options as in --help" % (name, len(want)))


def flatten(example):
    """Every key of a full example, nested keys with their section's name
    and the members of "proxies" elements on their own."""
    keys, members = set(), set()
    for key, value in example.items():
        keys.add(key)
        if isinstance(value, dict):
            keys |= {"%s.%s" % (key, k) for k in value}
        elif key in ELEMENT_SECTIONS and isinstance(value, list):
            for e in value:
                members |= set(e)
    return keys, members


def config_pages(env):
    expected = config_keys()
    expected["mgrokd.json.5"]["KEYS"] |= vhost_keys()
    options_by_type = proxy_option_keys()
    auth = auth_option_keys()
    users_file = function_keys(("plugins", "auth-users", "auth_users.c"), "parse_user")
    for name in ("mgrokd.json.5", "mgrok.json.5"):
        text = page(name)
        found = items(text, "Ic")
        for section, keys in sorted(expected[name].items()):
            with env.case("%s %s" % (name, section)):
                compare("%s %s (.It Ic KEY)" % (name, section), names(found, section), keys,
                        "core/config.c")
        for (pg, method), keys in sorted(auth.items()):
            if pg != name:
                continue
            with env.case("%s auth %s" % (name, method)):
                t.check(re.search(r"^\.Ss %s$" % method, text, re.M),
                        "%s: no .Ss %s in AUTHENTICATION" % (name, method))
                compare("%s AUTHENTICATION %s" % (name, method),
                        names(found, "AUTHENTICATION", method), keys, "the auth plugin")
        with env.case("%s full example" % name):
            blocks = literal_blocks(text, "EXAMPLES")
            t.check(blocks, "%s: no example" % name)
            try:
                example = json.loads(blocks[0])
            except ValueError as e:
                raise t.TestFailure("%s: the first example is no JSON: %s" % (name, e))
            keys, members = flatten(example)
            missing = sorted(expected[name]["KEYS"] - keys)
            t.check(not missing, "%s: the full example lacks %s" % (name, missing))
            for section in ELEMENT_SECTIONS.values():
                missing = sorted(expected[name].get(section, set()) - members)
                t.check(not missing, "%s: the full example's %s lack %s" %
                        (name, section.lower(), missing))
        t.log("%s: %d keys" % (name, sum(len(k) for k in expected[name].values())))
    found = items(page("mgrok.json.5"), "Ic")
    for proxy_type, keys in sorted(options_by_type.items()):
        with env.case("mgrok.json.5 options of %s" % proxy_type):
            compare("mgrok.json.5 PROXY OPTIONS %s" % proxy_type,
                    names(found, "PROXY OPTIONS", proxy_type), keys,
                    "the %s plugin" % proxy_type)
    with env.case("mgrokd.json.5 USERS FILE"):
        compare("mgrokd.json.5 USERS FILE", names(items(page("mgrokd.json.5"), "Ic"),
                                                  "USERS FILE"), users_file,
                "plugins/auth-users/auth_users.c parse_user")
    t.log("proxy options %s, users file keys %s ok" %
          (sorted((k, sorted(v)) for k, v in options_by_type.items()), sorted(users_file)))


def plugin_page(env):
    header = src("include", "mgrok", "plugin.h")
    text = page("mgrok-plugin.7")
    found = items(text, "Fn")
    seen = set()
    for m in re.finditer(r"^struct (\w+) \{\n(.*?)^\};", header, re.S | re.M):
        members = set(re.findall(r"\(\*(\w+)\)", m.group(2)))
        if not members:
            continue
        seen.add(m.group(1))
        with env.case("mgrok-plugin.7 struct %s" % m.group(1)):
            section = PLUGIN_STRUCTS.get(m.group(1))
            t.check(section, "plugin.h: struct %s has functions: give it a section in "
                    "mgrok-plugin.7 and in %s" % (m.group(1), os.path.basename(__file__)))
            compare("mgrok-plugin.7 %s (.It Fn NAME)" % section, names(found, section),
                    members, "struct %s" % m.group(1))
    with env.case("mgrok-plugin.7 structs"):
        t.check_eq(seen, set(PLUGIN_STRUCTS), "plugin.h's structs with function pointers")
    with env.case("mgrok-plugin.7 ABI versions"):
        major = re.search(r"#define MGROK_PLUGIN_ABI_MAJOR (\d+)", header).group(1)
        minor = re.search(r"#define MGROK_PLUGIN_ABI_MINOR (\d+)", header).group(1)
        versions = set(re.findall(r"^ \*   (\d+\.\d+) ", header, re.M))
        t.check("%s.%s" % (major, minor) in versions, "plugin.h: the changelog lacks %s.%s" %
                (major, minor), versions=sorted(versions))
        documented = {n for n, _ in items(text, None).get(("ABI VERSIONING", None), [])}
        compare("mgrok-plugin.7 ABI VERSIONING (.It X.Y)",
                {v for v in documented if re.match(r"\d+\.\d+$", v)}, versions,
                "plugin.h's changelog")
        t.check(re.search(r"^%s\.%s at present\.$" % (major, minor), text, re.M),
                "mgrok-plugin.7 does not say the ABI is %s.%s" % (major, minor))
    t.log("mgrok-plugin.7: every function of plugin.h, ABI %s" %
          ", ".join(sorted(versions)))


def main(env):
    with env.case("mandoc lint"):
        lint(env)
    options(env)
    config_pages(env)
    plugin_page(env)


t.run(main)

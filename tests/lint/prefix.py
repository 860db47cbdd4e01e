#!/usr/bin/env python3
"""
prefix.py - lists every extern (non-static) function defined in agent/,
common/ and plugins/ whose name does not carry its file's module prefix
(the rule is in docs/HACKING.md, "Names"). Exit status 1 when one is found
that tests/lint/prefix.allow does not list, or when the allowlist names one
that is fixed (so that the list stays honest); 0 otherwise.

Usage: prefix.py SOURCE_DIR [--all]   (--all: print every offender, allowed or not)
"""
import os
import re
import sys

DIRS = ("agent", "common", "plugins")
ALLOW = os.path.join("tests", "lint", "prefix.allow")
IDENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\($")


def strip(text):
    """Text without comments, string and character literals, preprocessor lines."""
    out, i, n = [], 0, len(text)
    bol = True  # at the start of a line (only blanks seen)
    while i < n:
        c = text[i]
        if bol and c == "#":
            # a directive, with its continuation lines
            while i < n and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
            bol = False
            continue
        out.append(c)
        if c == "\n":
            bol = True
        elif not c.isspace():
            bol = False
        i += 1
    return "".join(out)


def definitions(path):
    """(name, extern) of each function defined at file scope in path."""
    text = strip(open(path, encoding="utf-8", errors="replace").read())
    depth, decl, found = 0, [], []
    for c in text:
        if depth == 0:
            if c == "{":
                d = " ".join("".join(decl).split())
                decl = []
                depth = 1
                # A function definition: "... name(params)" then its body.
                head = d.split("(", 1)[0] + "(" if "(" in d else ""
                if d.endswith(")") and "=" not in d and not d.startswith("typedef"):
                    m = IDENT.search(head)
                    if m:
                        found.append((m.group(1), not re.search(r"\bstatic\b", d)))
                continue
            if c in ";}":
                decl = []
                continue
            decl.append(c)
        else:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
    return found


def prefixes(rel):
    """The prefixes a function in the file rel (relative to the source) may carry."""
    d, f = os.path.split(rel)
    base = f[:-2]
    if base in ("certsyncd", "certsyncctl"):
        allowed = ["main"]
        if base == "certsyncctl":
            allowed.append("ctl_")
        return allowed
    if base.startswith("ctl") and d.startswith("agent"):
        return ["ctl_"]  # the command-line client (ctl.h, ctl_*.c, wherever they live)
    if d == os.path.join("agent", "pipeline") and (base == "cs_pipeline" or
                                                   base.startswith("pl_")):
        return ["cs_pipeline_", "pl_"]  # the module cs_pipeline; pl_ inside it
    allowed = []
    parts = base.split("_")
    # The file's own name, and each shorter name of a module it belongs to
    # (MODULE.h or MODULE_int.h beside it): cs_acme_job.c -> cs_acme_.
    for k in range(len(parts), 1, -1):
        mod = "_".join(parts[:k])
        if k == len(parts) or os.path.exists(os.path.join(SRC, d, mod + ".h")) or \
                os.path.exists(os.path.join(SRC, d, mod + "_int.h")):
            allowed.append(mod + "_")
    return allowed


def main():
    global SRC
    SRC = sys.argv[1] if len(sys.argv) > 1 else "."
    show_all = "--all" in sys.argv[2:]
    offenders = []
    for top in DIRS:
        for root, _, files in os.walk(os.path.join(SRC, top)):
            for f in sorted(files):
                if not f.endswith(".c"):
                    continue
                path = os.path.join(root, f)
                rel = os.path.relpath(path, SRC)
                allowed = prefixes(rel)
                for name, extern in definitions(path):
                    if extern and not any(name == p[:-1] or name.startswith(p) for p in allowed):
                        offenders.append("%s %s" % (rel, name))
    offenders.sort()
    allow = set()
    apath = os.path.join(SRC, ALLOW)
    if os.path.exists(apath):
        for line in open(apath):
            line = line.split("#", 1)[0].strip()
            if line:
                allow.add(" ".join(line.split()))
    bad = [o for o in offenders if o not in allow]
    stale = sorted(allow - set(offenders))
    for o in offenders if show_all else bad:
        print("%s: extern function without its file's prefix" % o)
    for s in stale:
        print("%s: fixed, remove it from %s" % (s, ALLOW))
    print("prefix: %d offender(s), %d allowed by %s, %d new, %d stale" %
          (len(offenders), len(offenders) - len(bad), ALLOW, len(bad), len(stale)))
    return 1 if bad or stale else 0


if __name__ == "__main__":
    sys.exit(main())

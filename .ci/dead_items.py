#!/usr/bin/env python3
"""Dead public items.

Every module of the library is `pub`, because the binary, the integration
tests and the examples use them; that hides from the compiler any public
item nobody uses. This checks a copy of the crate whose modules are
private: an item the compiler then calls unused is either used from outside
the library (listed in dead_items.allow, with who uses it) or dead.

Run from anywhere: python3 .ci/dead_items.py  (exit 1 names each dead item).
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY = os.path.join(ROOT, "target", "dead-items")
WARNING = re.compile(r"^(src/\S+?):\d+:\d+: warning: .* (?:is|are) never (?:used|read|constructed)")


def allowed():
    """{(path, name)} from dead_items.allow: `path name  # who uses it`."""
    entries = set()
    with open(os.path.join(ROOT, ".ci", "dead_items.allow")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                path, name = line.split()
                entries.add((path, name))
    return entries


def main():
    shutil.rmtree(COPY, ignore_errors=True)
    os.makedirs(COPY)
    for name in ("Cargo.toml", "Cargo.lock"):
        shutil.copy(os.path.join(ROOT, name), COPY)
    shutil.copytree(os.path.join(ROOT, "src"), os.path.join(COPY, "src"))
    lib = os.path.join(COPY, "src", "lib.rs")
    with open(lib) as f:
        text = f.read()
    with open(lib, "w") as f:
        f.write(re.sub(r"(?m)^pub mod ", "mod ", text))
    out = subprocess.run(
        ["cargo", "check", "--locked", "--lib", "--message-format=short",
         "--manifest-path", os.path.join(COPY, "Cargo.toml"),
         "--target-dir", os.path.join(ROOT, "target")],
        capture_output=True, text=True, cwd=COPY,
    )
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 1
    allow = allowed()
    found = set()
    dead = []
    for line in out.stderr.splitlines():
        m = WARNING.match(line)
        if not m:
            continue
        path = m.group(1)
        for name in re.findall(r"`([^`]+)`", line):
            found.add((path, name))
            if (path, name) not in allow:
                dead.append(f"{path}: `{name}` (unused by the library and not listed: remove it, or say in .ci/dead_items.allow who uses it)")
    stale = sorted(allow - found)
    for path, name in stale:
        dead.append(f".ci/dead_items.allow: {path} {name} is used inside the library now (or gone): remove the line")
    for d in dead:
        print(d)
    print(f"dead items: {len(dead)} problem(s); {len(found)} items used only from outside the library, all listed"
          if dead else f"dead items: none ({len(found)} items used only by the binary, tests or examples, listed)")
    return 1 if dead else 0


if __name__ == "__main__":
    sys.exit(main())

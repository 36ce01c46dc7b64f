#!/usr/bin/env python3
"""Static check of the Dockerfile and .dockerignore (no Docker engine needed).

Verifies the contract of the image: a rust:1-bookworm builder stage that runs
deploy/docker/build.sh (cargo build --release --locked), a distroless
cc-debian12:nonroot runtime stage that copies the binary from the builder to
/usr/local/bin, runs as a non-root user, exposes 9817 and uses the binary as
exec-form ENTRYPOINT; and that .dockerignore excludes target/ and .git but
nothing the build needs. With the built binary (argument or
target/release/aliyun-backup-exporter), also checks that its default listen
port, as printed by --help, is the exposed one.
"""
import fnmatch
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_PATH = "/usr/local/bin/aliyun-backup-exporter"
PORT = "9817"
BUILD_NEEDS = ["Cargo.toml", "Cargo.lock", "src/main.rs", "deploy/docker/build.sh"]

errors = []


def err(msg):
    errors.append(msg)


def instructions(text):
    """[(lineno, INSTRUCTION, arguments)] with continuations joined."""
    out, buf, start = [], "", None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if start is None:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf, start = "", None
    if buf:
        err("Dockerfile ends inside a continued line")
    return out


def main(argv):
    dockerfile = os.path.join(ROOT, "Dockerfile")
    with open(dockerfile) as f:
        ins = instructions(f.read())
    stages = []  # [(from args, [instructions])]
    for n, word, rest in ins:
        if word == "FROM":
            stages.append((rest, []))
        elif not stages:
            if word != "ARG":
                err("line %d: %s before the first FROM" % (n, word))
        else:
            stages[-1][1].append((n, word, rest))
    if len(stages) < 2:
        err("expected a multi-stage build (2 FROM), found %d" % len(stages))
        return report()
    builder, runtime = stages[0], stages[-1]
    if not re.fullmatch(r"rust:1-bookworm\s+AS\s+builder", builder[0], re.I):
        err("first stage must be 'FROM rust:1-bookworm AS builder', is %r" % builder[0])
    if runtime[0].split()[0] != "gcr.io/distroless/cc-debian12:nonroot":
        err("runtime stage must be FROM gcr.io/distroless/cc-debian12:nonroot, is %r" % runtime[0])
    for frm, _ in stages:
        image = frm.split()[0]
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            err("FROM %s: pin a tag other than latest" % image)

    runs = [rest for _, w, rest in builder[1] if w == "RUN"]
    if not any("deploy/docker/build.sh" in r for r in runs):
        err("builder stage must RUN deploy/docker/build.sh")
    build_sh = os.path.join(ROOT, "deploy/docker/build.sh")
    if not os.access(build_sh, os.X_OK):
        err("deploy/docker/build.sh missing or not executable")
    else:
        with open(build_sh) as f:
            if "cargo build --release --locked" not in f.read():
                err("deploy/docker/build.sh must run 'cargo build --release --locked'")

    rt = runtime[1]
    words = [w for _, w, _ in rt]
    copies = [rest for _, w, rest in rt if w == "COPY"]
    if not any(re.match(r"--from=builder\s+\S+\s+%s$" % re.escape(BIN_PATH), c) for c in copies):
        err("runtime stage must COPY --from=builder the binary to %s" % BIN_PATH)
    users = [rest for _, w, rest in rt if w == "USER"]
    if not users:
        err("runtime stage has no USER")
    elif users[-1].split(":")[0] in ("root", "0") or not users[-1].startswith("nonroot"):
        err("runtime stage must run as USER nonroot, is %r" % users[-1])
    exposes = [p for _, w, rest in rt if w == "EXPOSE" for p in rest.split()]
    if exposes != [PORT] and exposes != [PORT + "/tcp"]:
        err("runtime stage must EXPOSE %s only, exposes %r" % (PORT, exposes))
    entry = [rest for _, w, rest in rt if w == "ENTRYPOINT"]
    if len(entry) != 1:
        err("runtime stage must have one ENTRYPOINT, has %d" % len(entry))
    else:
        try:
            value = json.loads(entry[0])
        except ValueError:
            value = None
        if value != [BIN_PATH]:
            err("ENTRYPOINT must be exec form [%r], is %s" % (BIN_PATH, entry[0]))
    if "ADD" in [w for _, w, _ in ins]:
        err("use COPY, not ADD")
    if "CMD" in words:
        cmd = [rest for _, w, rest in rt if w == "CMD"][-1]
        if not cmd.startswith("["):
            err("CMD must be exec form")

    # .dockerignore
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    norm = [p.rstrip("/").lstrip("/") for p in patterns]
    for must in ("target", ".git"):
        if must not in norm:
            err(".dockerignore must exclude %s/" % must)
    for path in BUILD_NEEDS:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        for p in norm:
            if p.startswith("!"):
                continue
            if any(fnmatch.fnmatch(x, p) or fnmatch.fnmatch(x, p.replace("**/", "")) for x in prefixes):
                err(".dockerignore pattern %r excludes %s, which the build needs" % (p, path))

    # The exposed port is the binary's default.
    binary = argv[1] if len(argv) > 1 else os.path.join(ROOT, "target/release/aliyun-backup-exporter")
    if os.access(binary, os.X_OK):
        try:
            out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10,
                                 env={"PATH": os.environ.get("PATH", "")}).stdout
        except subprocess.TimeoutExpired:
            out = ""
        if ":%s" % PORT not in out:
            err("'%s --help' does not show the default listen port %s" % (binary, PORT))
        else:
            print("  ok    the binary's default listen address uses port %s" % PORT)
    else:
        print("  skip  no binary at %s: default port not compared" % binary)
    return report(len(stages))


def report(n_stages=0):
    for e in errors:
        print("  FAIL  %s" % e)
    if errors:
        print("Dockerfile check: %d problem(s)" % len(errors))
        return 1
    print("Dockerfile check: OK (%d stages; rust:1-bookworm builder running deploy/docker/build.sh; "
          "distroless nonroot runtime; USER nonroot; EXPOSE %s; exec ENTRYPOINT %s; .dockerignore)"
          % (n_stages, PORT, BIN_PATH))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

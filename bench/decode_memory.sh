#!/usr/bin/env bash
# Peak RSS of real DescribeBackups polls against the fake API answering a
# padded 16 MiB page (issue 11): the release build of
# examples/decode_memory.rs polls, through the signed client and real HTTP,
# a fake running in a child process, and prints the polling process's
# resident memory before, at its peak during the polls, and after.
#
#   bench/decode_memory.sh [POLLS]
#
#   POLLS  polls per kind, one after the other (default 3).
#
# Kinds: small (a plain two-backup page, the baseline), zeros, objects ({}),
# strings (4 KiB of zeros each) and deep ([[[[…]]]]) in an unknown field,
# items ({} as the items of the list). Each runs in a fresh process.
#
# Environment: DECODE_MEMORY_EXE, another build of the example to measure
# (e.g. one built from an older tree, to compare). Linux only (/proc).
# MiB = 2^20 bytes. Figures, not assertions: tests/decode_memory.rs is the
# test.
set -euo pipefail
cd "$(dirname "$0")/.."

polls="${1:-3}"
case "$polls" in
'' | *[!0-9]*)
    echo "usage: bench/decode_memory.sh [POLLS]" >&2
    exit 2
    ;;
esac

exe="${DECODE_MEMORY_EXE:-}"
if [ -z "$exe" ]; then
    cargo build --release --locked --example decode_memory >&2
    exe=target/release/examples/decode_memory
fi
echo "$exe, $polls polls per kind, on $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
for kind in small zeros objects strings deep items; do
    "$exe" --kind "$kind" --polls "$polls"
done

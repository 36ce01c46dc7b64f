#!/usr/bin/env bash
# Fuzzes the JSON decoders: runs the property tests of
# tests/it/decode_props.rs in release mode, round after round, each round
# with a new random seed and many cases, for a given time.
#
#   bench/fuzz.sh [SECONDS] [CASES]
#
#   SECONDS  how long to fuzz (default 600). A round that starts before the
#            time is up runs to its end, so the run lasts a little longer.
#   CASES    cases per property and round (default 20000, or FUZZ_CASES).
#
# Environment: FUZZ_OUT, where logs and failures go (default target/fuzz);
# FUZZ_THREADS, test threads (default 2). On a shared machine run it as
# `nice -n 10 bench/fuzz.sh`.
#
# Prints one line per round, then the rounds, the cases run per property
# and in total, and the failures. Stops at the first failing round and exits
# 1, keeping that round's log (proptest's minimal failing input and the
# seed that reproduces it: PROPTEST_RNG_SEED=<seed> PROPTEST_CASES=<cases>)
# and the failing seeds in $FUZZ_OUT/failures.txt, which the next runs
# replay first.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-600}"
cases="${2:-${FUZZ_CASES:-20000}}"
threads="${FUZZ_THREADS:-2}"
out="${FUZZ_OUT:-target/fuzz}"
case "$duration$cases$threads" in
*[!0-9]*)
    echo "usage: bench/fuzz.sh [SECONDS] [CASES]" >&2
    exit 2
    ;;
esac
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Built once: changes made to the tree meanwhile do not change what is fuzzed.
echo "building the property tests (release)..."
exe="$(cargo test --release --locked --test it --no-run --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "fuzz: could not find the test binary" >&2
    exit 2
fi
properties="$("$exe" decode_props:: --list 2>/dev/null | grep -c ': test$' || true)"
if [ "$properties" -eq 0 ]; then
    echo "fuzz: no property test found in $exe" >&2
    exit 2
fi
echo "fuzzing $properties properties for ${duration}s, $cases cases each per round, $threads threads"
echo "on $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"

start="$(date +%s)"
deadline=$((start + duration))
rounds=0
failures=0
while [ "$rounds" -eq 0 ] || [ "$(date +%s)" -lt "$deadline" ]; do
    round=$((rounds + 1))
    seed="$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')"
    log="$out/round-$round.log"
    began="$(date +%s)"
    if PROPTEST_CASES="$cases" PROPTEST_RNG_SEED="$seed" \
        DECODE_PROPS_FAILURES="$out/failures.txt" \
        "$exe" decode_props:: --test-threads="$threads" >"$log" 2>&1; then
        rounds=$round
        rm -f "$log"
        echo "round $round: seed $seed, $properties x $cases cases, ok in $(($(date +%s) - began))s"
    else
        failures="$(grep -c '^test .* FAILED$' "$log" || true)"
        [ "$failures" -gt 0 ] || failures=1
        echo "round $round: seed $seed FAILED ($failures properties): see $log"
        grep -E '^test .* FAILED$|^Test failed|^minimal failing input' "$log" | cut -c1-300 || true
        break
    fi
done
elapsed=$(($(date +%s) - start))

echo "---"
echo "duration:  ${elapsed}s"
echo "rounds:    $rounds passed"
echo "cases:     $((rounds * cases)) per property, $((rounds * cases * properties)) in all ($properties properties)"
echo "failures:  $failures"
if [ "$failures" -gt 0 ]; then
    echo "kept:      $log and $out/failures.txt"
    exit 1
fi

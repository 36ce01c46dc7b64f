#!/usr/bin/env bash
# Builds the release exporter and the fake API, then runs a benchmark:
#   bench/run.sh            the growth benchmark, bench/growth.py (see its
#                           docstring for BENCH_RUNS, BENCH_SIZES,
#                           BENCH_RATE_LIMITED_SIZE...)
#   bench/run.sh bench.py   the older two-scenario benchmark, bench/bench.py
#   bench/run.sh stack_floor.py
#                           the exporter next to its stack alone
#                           (examples/stack_floor.rs), bench/stack_floor.py
set -euo pipefail
cd "$(dirname "$0")/.."
script="${1:-growth.py}"
cargo build --release --locked --bin aliyun-backup-exporter --example fake_api --example stack_floor
python3 "bench/$script" target/release/aliyun-backup-exporter target/release/examples/fake_api \
    target/release/examples/stack_floor

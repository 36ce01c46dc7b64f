#!/usr/bin/env bash
# Builds the release exporter and the fake API, then runs bench/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin aliyun-backup-exporter --example fake_api
python3 bench/bench.py target/release/aliyun-backup-exporter target/release/examples/fake_api

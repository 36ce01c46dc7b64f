#!/usr/bin/env bash
# Builds the release binary exactly as the container image does, and copies it
# to OUTDIR. Used by the Dockerfile's builder stage and by CI.
#
#   deploy/docker/build.sh OUTDIR
#
# --locked: the build uses Cargo.lock as committed and fails if it is stale.
# Honours CARGO_TARGET_DIR, extra CARGO_BUILD_FLAGS (space-separated), and
# GIT_REVISION (compiled into aliyun_backup_exporter_build_info; "unknown" if unset).
set -euo pipefail

out=${1:?usage: deploy/docker/build.sh OUTDIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

target_dir=${CARGO_TARGET_DIR:-$root/target}
# shellcheck disable=SC2206 # split on purpose
extra=(${CARGO_BUILD_FLAGS:-})
echo "build.sh: cargo build --release --locked ${extra[*]}"
cargo build --release --locked "${extra[@]}"

bin=$target_dir/release/aliyun-backup-exporter
[[ -x $bin ]] || { echo "build.sh: $bin was not built" >&2; exit 1; }
mkdir -p "$out"
install -m 0755 "$bin" "$out/aliyun-backup-exporter"
echo "build.sh: installed $out/aliyun-backup-exporter ($(du -h "$out/aliyun-backup-exporter" | cut -f1))"

#!/usr/bin/env bash
# Starts the exporter in demo mode, scrapes it once every instance has been
# polled, lints the exposition with `promtool check metrics`, and checks that
# every metric of the contract is there. Talks to 127.0.0.1 only.
# Usage: tests/demo_scrape.sh [path/to/aliyun-backup-exporter]
set -euo pipefail
bin=${1:-target/release/aliyun-backup-exporter}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp -d)
"$bin" --demo --web.listen-address="127.0.0.1:$port" >"$out/stdout" 2>"$out/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$out"' EXIT

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
curl -fsS "http://127.0.0.1:$port/metrics" >"$out/metrics"

echo "promtool check metrics:"
if ! promtool check metrics <"$out/metrics"; then
  echo "FAILED: promtool found problems in the exposition"; exit 1
fi

missing=0
for metric in \
  aliyun_backup_last_success_timestamp_seconds aliyun_backup_last_success_age_seconds \
  aliyun_backup_last_success_size_bytes aliyun_backup_last_success_duration_seconds \
  aliyun_backup_last_success_info aliyun_backup_last_attempt_timestamp_seconds \
  aliyun_backup_last_attempt_success aliyun_backup_backups aliyun_backup_poll_success \
  aliyun_backup_poll_success_timestamp_seconds aliyun_backup_api_requests_total \
  aliyun_backup_api_request_duration_seconds_bucket aliyun_backup_poll_cycle_duration_seconds \
  aliyun_backup_exporter_build_info process_resident_memory_bytes \
  aliyun_backup_instance_info aliyun_backup_instance_created_timestamp_seconds \
  aliyun_backup_discovery_success aliyun_backup_discovery_timestamp_seconds aliyun_backup_targets \
  aliyun_backup_exporter_shard_ordinal aliyun_backup_exporter_total_shards \
  aliyun_backup_exporter_config_last_reload_successful \
  aliyun_backup_exporter_config_last_reload_success_timestamp_seconds \
  aliyun_backup_policy_info aliyun_backup_policy_max_interval_seconds \
  aliyun_backup_policy_retention_seconds aliyun_backup_policy_log_backup_enabled \
  aliyun_backup_expected_max_age_seconds aliyun_backup_poll_interval_seconds; do
  if ! grep -q "^$metric[{ ]" "$out/metrics"; then
    echo "FAILED: $metric missing from the demo scrape"; missing=1
  fi
done
[ "$missing" = 0 ] || exit 1
grep -q 'aliyun_backup_poll_success{.*instance_id="r-demo-released"} 0' "$out/metrics" || { echo "FAILED: released instance not failing"; exit 1; }
grep -q 'node_id="r-demo-cluster-db-1"' "$out/metrics" || { echo "FAILED: no per-shard series"; exit 1; }
grep -q 'aliyun_backup_instance_info{.*instance_id="r-demo-creating".*status="Creating"' "$out/metrics" || { echo "FAILED: the Creating instance has no info"; exit 1; }
! grep -q 'aliyun_backup_poll_success{.*instance_id="r-demo-creating"' "$out/metrics" || { echo "FAILED: the Creating instance was polled"; exit 1; }
grep -q 'aliyun_backup_discovery_success{account="default",product="redis",region_id="cn-shanghai"} 1' "$out/metrics" || { echo "FAILED: no discovery in cn-shanghai"; exit 1; }
grep -q 'aliyun_backup_instance_info{.*instance_id="r-demo-native".*backup_api="cluster_backup_list"' "$out/metrics" || { echo "FAILED: the cloud-native cluster is not polled with DescribeClusterBackupList"; exit 1; }
grep -q 'aliyun_backup_expected_max_age_seconds{.*instance_id="r-demo-stale",source="default"}' "$out/metrics" || { echo "FAILED: the instance whose policy is forbidden is not expected by --backup.max-age"; exit 1; }
echo "demo scrape: $(grep -c '^aliyun_backup_' "$out/metrics") series, every contract metric present, promtool clean"

#!/usr/bin/env bash
# End-to-end test with a real Prometheus.
#
# Starts the exporter in --demo mode and a Prometheus (2.42+, /usr/bin/prometheus
# from Debian) that scrapes it every second and evaluates deploy/prometheus/alerts.yml
# every second, then checks through Prometheus's HTTP API that discovery finds
# the instance the demo adds after about a minute, the demo's fleet facts
# (two regions, an instance in Creating listed but not polled, discovery
# working), that every query of dashboards/aliyun-backup.json returns data and
# that the demo's instances raise exactly the expected alerts and no other
# (deploy/e2e/check_e2e.py). The exporter runs with --web.config.file as a
# careful operator would set it: TLS, client certificates required and
# verified (RequireAndVerifyClientCert) and basic auth, with the test
# certificates of tests/web/certs; Prometheus scrapes it over TLS with its
# client certificate and password, and the checks make sure a client without
# them gets nothing. Everything listens on
# 127.0.0.1 only; both processes are stopped on exit; the whole run is bounded
# by E2E_TIMEOUT seconds (default 170).
# Exit status 0 only when every check passed.
#
# Environment:
#   EXPORTER_BIN    exporter binary (default target/release/aliyun-backup-exporter)
#   EXPORTER_ARGS   extra exporter flags, space-separated (default none)
#   PROMETHEUS_BIN  prometheus binary (default: prometheus on PATH)
#   E2E_TIMEOUT     overall time limit in seconds (default 170)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXPORTER_BIN=${EXPORTER_BIN:-$ROOT/target/release/aliyun-backup-exporter}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
E2E_TIMEOUT=${E2E_TIMEOUT:-170}
JOB=aliyun-backup-exporter
START=$(date +%s)
DEADLINE=$((START + E2E_TIMEOUT))

say() { printf 'e2e: %s\n' "$*"; }
die() { say "FAIL: $*"; exit 1; }

[[ -x $EXPORTER_BIN ]] || die "exporter binary not found or not executable: $EXPORTER_BIN (build it with 'cargo build --release' or set EXPORTER_BIN)"
command -v "$PROMETHEUS_BIN" >/dev/null || die "prometheus not found (apt-get install prometheus, or set PROMETHEUS_BIN)"
command -v python3 >/dev/null || die "python3 not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/aliyun-backup-e2e.XXXXXX")
EXPORTER_PID=
PROM_PID=

stop() { # pid name: TERM, then KILL after 10 s; prints the exit status
    local pid=$1 name=$2 i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name did not stop within 10 s of SIGTERM, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop "$CHECK_PID" checks || true
    stop "$PROM_PID" prometheus || true
    stop "$EXPORTER_PID" exporter || true
    if ((rc != 0)); then
        for f in exporter.log prometheus.log; do
            if [[ -s $TMP/$f ]]; then
                say "last lines of $f:"
                tail -n 25 "$TMP/$f" | sed 's/^/    /'
            fi
        done
    fi
    rm -rf "$TMP"
    say "$( ((rc == 0)) && echo PASSED || echo "FAILED (exit $rc)") in $(($(date +%s) - START)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# Every wait is bounded: the checks get the deadline and run under timeout(1).
# They run in the background and are waited for, so that a signal to this
# script is handled at once (bash defers traps until a foreground child ends).
CHECK_PID=
bounded() {
    local left=$((DEADLINE - $(date +%s))) rc=0
    ((left > 0)) || die "overall time limit of ${E2E_TIMEOUT} s reached"
    timeout --kill-after=5 "$left" "$@" &
    CHECK_PID=$!
    wait "$CHECK_PID" || rc=$?
    CHECK_PID=
    return "$rc"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- web config
# The test certificates (tests/web/certs/gen.sh): server.crt is for
# 127.0.0.1 and localhost, client.crt is signed by ca.crt. The password is a
# test vector of the exporter-toolkit's (carol123, bcrypt cost 10).
CERTS=$ROOT/tests/web/certs
WEB_USER=prometheus
WEB_PASSWORD=carol123
cat >"$TMP/web.yml" <<YAML
tls_server_config:
  cert_file: $CERTS/server.crt
  key_file: $CERTS/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: $CERTS/ca.crt
basic_auth_users:
  $WEB_USER: \$2y\$10\$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu
YAML
TLS_ARGS=(--ca "$CERTS/ca.crt" --cert "$CERTS/client.crt" --key "$CERTS/client.key"
    --user "$WEB_USER" --password "$WEB_PASSWORD")

# ------------------------------------------------------------------ exporter
EXPORTER_PORT=$(free_port)
# shellcheck disable=SC2206 # EXPORTER_ARGS is split on purpose
extra=(${EXPORTER_ARGS:-})
say "starting $EXPORTER_BIN --demo --web.listen-address=127.0.0.1:$EXPORTER_PORT --web.config.file=$TMP/web.yml ${extra[*]}"
"$EXPORTER_BIN" --demo --web.listen-address="127.0.0.1:$EXPORTER_PORT" --web.config.file="$TMP/web.yml" "${extra[@]}" >"$TMP/exporter.log" 2>&1 &
EXPORTER_PID=$!
sleep 0.5
kill -0 "$EXPORTER_PID" 2>/dev/null || { wait "$EXPORTER_PID" || true; die "the exporter exited at start-up"; }
bounded python3 "$ROOT/deploy/e2e/check_e2e.py" exporter --exporter "https://127.0.0.1:$EXPORTER_PORT" \
    "${TLS_ARGS[@]}" --deadline "$DEADLINE" ||
    die "exporter checks failed"

# ---------------------------------------------------------------- prometheus
PROM_PORT=$(free_port)
mkdir -p "$TMP/data"
cat >"$TMP/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: $JOB
    scheme: https
    tls_config:
      ca_file: $CERTS/ca.crt
      cert_file: $CERTS/client.crt
      key_file: $CERTS/client.key
    basic_auth:
      username: $WEB_USER
      password: $WEB_PASSWORD
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
YAML
say "starting $PROMETHEUS_BIN on 127.0.0.1:$PROM_PORT ($("$PROMETHEUS_BIN" --version 2>&1 | head -n 1))"
"$PROMETHEUS_BIN" \
    --config.file="$TMP/prometheus.yml" \
    --storage.tsdb.path="$TMP/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
sleep 0.5
kill -0 "$PROM_PID" 2>/dev/null || { wait "$PROM_PID" || true; die "prometheus exited at start-up"; }
bounded python3 "$ROOT/deploy/e2e/check_e2e.py" prometheus --prometheus "http://127.0.0.1:$PROM_PORT" \
    --dashboard "$ROOT/dashboards/aliyun-backup.json" --deadline "$DEADLINE" ||
    die "prometheus checks failed"

# ----------------------------------------------------------- graceful stop
stop "$PROM_PID" prometheus || true
PROM_PID=
kill -TERM "$EXPORTER_PID"
rc=0
for ((i = 0; i < 100; i++)); do
    kill -0 "$EXPORTER_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$EXPORTER_PID" 2>/dev/null; then
    die "the exporter did not stop within 10 s of SIGTERM"
fi
wait "$EXPORTER_PID" || rc=$?
EXPORTER_PID=
((rc == 0)) || die "the exporter exited with $rc after SIGTERM, want 0"
say "  ok    the exporter stops on SIGTERM with exit 0"
say "all checks passed"

#!/usr/bin/env bash
# Checks of everything under deploy/, dashboards/ and the Dockerfile.
#
# Needs: promtool and prometheus (Debian package `prometheus`, 2.42+), python3
# with PyYAML, helm-python-sdk and kubernetes-validate (PyPI; Helm's library
# and the Kubernetes schemas, for the chart), and the release binary already built
# (target/release/aliyun-backup-exporter, or EXPORTER_BIN). Never runs cargo.
# Stops at the first failing step, prints a summary, exits non-zero on failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export EXPORTER_BIN=${EXPORTER_BIN:-$ROOT/target/release/aliyun-backup-exporter}

steps=(
    "promtool check rules|promtool check rules deploy/prometheus/alerts.yml"
    "promtool test rules|promtool test rules deploy/prometheus/alerts_test.yml"
    "dashboard: valid JSON, only contract metrics|python3 deploy/check_dashboard.py dashboards/aliyun-backup.json"
    "Dockerfile static check|python3 deploy/docker/check_dockerfile.py $(printf %q "$EXPORTER_BIN")"
    "PrometheusRule up to date|python3 deploy/kubernetes/gen-prometheusrule.py --check"
    "Kubernetes manifests vs the binary|python3 deploy/kubernetes/check_manifests.py --binary $(printf %q "$EXPORTER_BIN")"
    "Helm chart: lint, render, validate, run the binary|python3 deploy/helm/check_chart.py --binary $(printf %q "$EXPORTER_BIN")"
    "end to end with Prometheus|bash deploy/e2e/prometheus_e2e.sh"
)

passed=()
summary() {
    local failed=$1
    echo
    echo "==== deploy/check.sh summary"
    for s in "${passed[@]}"; do echo "  PASS  $s"; done
    if [[ -n $failed ]]; then
        echo "  FAIL  $failed"
        local i skipped=0
        for ((i = ${#passed[@]} + 1; i < ${#steps[@]}; i++)); do
            echo "  skip  ${steps[i]%%|*}"
            skipped=$((skipped + 1))
        done
        echo "deploy-checks: ${#passed[@]} passed, 1 failed, $skipped skipped"
    else
        echo "deploy-checks: ${#passed[@]} passed, 0 failed"
    fi
}

# Prerequisites, with a clear message rather than a confusing failure later.
missing=()
command -v promtool >/dev/null || missing+=("promtool (apt-get install prometheus)")
command -v prometheus >/dev/null || missing+=("prometheus (apt-get install prometheus)")
command -v python3 >/dev/null || missing+=("python3")
python3 -c 'import yaml' 2>/dev/null || missing+=("PyYAML (pip install -r requirements-ci.txt)")
python3 -c 'import helm_python, kubernetes_validate' 2>/dev/null ||
    missing+=("helm-python-sdk and kubernetes-validate (pip install -r requirements-ci.txt)")
[[ -x $EXPORTER_BIN ]] || missing+=("the exporter binary $EXPORTER_BIN (cargo build --release --locked)")
if ((${#missing[@]})); then
    printf 'deploy/check.sh: missing %s\n' "${missing[@]}"
    summary "prerequisites"
    exit 1
fi

for step in "${steps[@]}"; do
    name=${step%%|*}
    cmd=${step#*|}
    echo "==== $name: $cmd"
    start=$(date +%s)
    if ! bash -c "$cmd"; then
        echo "==== FAILED: $name"
        summary "$name"
        exit 1
    fi
    passed+=("$name ($(($(date +%s) - start)) s)")
done
summary ""

#!/usr/bin/env python3
"""Generate standalone/prometheusrule.yaml from deploy/prometheus/alerts.yml.

  python3 deploy/kubernetes/gen-prometheusrule.py          # write the file
  python3 deploy/kubernetes/gen-prometheusrule.py --check  # exit 1 if stale

The groups are copied as text (comments included) under `spec:`, so the
PrometheusRule holds exactly the rules that promtool tests. --check also
compares both files parsed, group by group.
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
OUT = os.path.join(HERE, "standalone", "prometheusrule.yaml")

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by
# deploy/kubernetes/gen-prometheusrule.py: do not edit, edit alerts.yml and run
#   python3 deploy/kubernetes/gen-prometheusrule.py
# kube-prometheus-stack only loads PrometheusRules whose labels match its
# ruleSelector (by default release: <helm release name>): add that label with
# kustomize if yours needs it.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: aliyun-backup-exporter
  labels:
    app.kubernetes.io/name: aliyun-backup-exporter
    app.kubernetes.io/component: exporter
spec:
"""


def generate():
    with open(ALERTS) as f:
        lines = f.read().splitlines()
    # Drop the file's own header comment: everything before `groups:`.
    start = next(i for i, l in enumerate(lines) if l.startswith("groups:"))
    body = "\n".join(("  " + l) if l.strip() else "" for l in lines[start:])
    return HEADER + body.rstrip("\n") + "\n"


def main(argv):
    text = generate()
    rel = os.path.relpath(OUT, ROOT)
    if "--check" in argv[1:]:
        with open(ALERTS) as f:
            groups = yaml.safe_load(f)["groups"]
        try:
            with open(OUT) as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        doc = yaml.safe_load(current) if current else {}
        problems = []
        if current != text:
            problems.append("%s is not the output of gen-prometheusrule.py" % rel)
        if (doc or {}).get("spec", {}).get("groups") != groups:
            problems.append("%s spec.groups differ from deploy/prometheus/alerts.yml" % rel)
        if (doc or {}).get("kind") != "PrometheusRule":
            problems.append("%s is not a PrometheusRule" % rel)
        for p in problems:
            print("  FAIL  %s" % p)
        if problems:
            print("PrometheusRule check: stale; run: python3 deploy/kubernetes/gen-prometheusrule.py")
            return 1
        n = sum(len(g["rules"]) for g in groups)
        print("PrometheusRule check: %s is up to date (%d group(s), %d rules identical to alerts.yml)" % (rel, len(groups), n))
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s" % rel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

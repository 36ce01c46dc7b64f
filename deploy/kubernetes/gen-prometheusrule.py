#!/usr/bin/env python3
"""Generate the PrometheusRules of the kustomizations from deploy/prometheus/alerts.yml.

  python3 deploy/kubernetes/gen-prometheusrule.py          # write the files
  python3 deploy/kubernetes/gen-prometheusrule.py --check  # exit 1 if stale

Writes standalone/prometheusrule.yaml and sharded/prometheusrule.yaml (the
same text: kustomize does not let sharded/ reference a file of standalone/).
The groups are copied as text (comments included) under `spec:`, so the
PrometheusRule holds exactly the rules that promtool tests. --check also
compares each file with alerts.yml parsed, group by group.
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
OUTS = [os.path.join(HERE, d, "prometheusrule.yaml") for d in ("standalone", "sharded")]

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


def check(text, groups, out):
    rel = os.path.relpath(out, ROOT)
    try:
        with open(out) as f:
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
    return problems


def main(argv):
    text = generate()
    if "--check" in argv[1:]:
        with open(ALERTS) as f:
            groups = yaml.safe_load(f)["groups"]
        problems = []
        for out in OUTS:
            problems += check(text, groups, out)
        for p in problems:
            print("  FAIL  %s" % p)
        if problems:
            print("PrometheusRule check: stale; run: python3 deploy/kubernetes/gen-prometheusrule.py")
            return 1
        n = sum(len(g["rules"]) for g in groups)
        print("PrometheusRule check: %s up to date (%d group(s), %d rules identical to alerts.yml)"
              % (" and ".join(os.path.relpath(o, ROOT) for o in OUTS), len(groups), n))
        return 0
    for out in OUTS:
        with open(out, "w") as f:
            f.write(text)
        print("wrote %s" % os.path.relpath(out, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Check the Helm chart deploy/helm/aliyun-backup-exporter with a real Helm engine.

  python3 deploy/helm/check_chart.py [--binary PATH] [--static-only]
  python3 deploy/helm/check_chart.py --bump

Needs PyYAML and the PyPI packages helm-python-sdk (Helm's own Go library,
bundled as a shared library: lint and render offline, no helm binary, no
cluster) and kubernetes-validate (the Kubernetes JSON schemas, bundled);
promtool when on PATH. Never runs cargo, never leaves loopback.

The chart:
  * Chart.yaml's appVersion is Cargo.toml's version; the chart's files have
    the digest recorded for its version in deploy/helm/chart-version.lock
    (every change to the chart needs a new chart version);
  * README.md's values table is the one generated from values.yaml's
    `# --` comments;
  * files/alerts.yml and files/aliyun-backup.json are symbolic links to
    deploy/prometheus/alerts.yml and dashboards/aliyun-backup.json (one
    source of truth), and Helm's loader reads them through the links.
For every values file of the chart's ci/ folder (release "backups" in
namespace "monitoring"):
  * `helm lint --strict` reports no error and no warning;
  * `helm template` renders, or fails with the message a first-line comment
    `# expect-failure: <text>` announces (features the exporter lacks);
  * every manifest validates against the Kubernetes schemas (strict: unknown
    fields are errors) of the oldest Kubernetes the chart supports
    (kubeVersion) and of the newest kubernetes-validate knows; ServiceMonitor,
    PodMonitor and PrometheusRule against the fields prometheus-operator's
    monitoring.coreos.com/v1 CRDs define and require (a subset written out
    below, unknown fields refused);
  * the workload: a Deployment of 1 replica, or with `shards` N a
    StatefulSet of N replicas (podManagementPolicy Parallel, a headless
    governing Service, --shard.count=N --shard.from-hostname); port metrics
    9817, /healthz and /readyz probes, restrictive security context, no
    service account token, credentials as `credentials.source` says;
    checksum/config is the rendered ConfigMap's sha256 and changes with it;
    webConfig is a Secret mounted as --web.config.file (checksum/web-config),
    the probes HTTPS with TLS and TCP checks when client certificates are
    required;
  * Services, ServiceMonitor and PodMonitor select the pods, ports and paths
    agree, job names match AliyunBackupExporterDown's job=~".*aliyun-backup.*";
  * the PrometheusRule holds exactly the groups of deploy/prometheus/alerts.yml
    (parsed, every expression byte for byte, and the text itself), and
    `promtool check rules` accepts them; the dashboard ConfigMap holds
    dashboards/aliyun-backup.json byte for byte, labelled grafana_dashboard;
  * the real exporter runs with the rendered args and env (every endpoint at
    http://127.0.0.1:9, mounted ConfigMaps and tokens written to a temporary
    root), as deploy/kubernetes/check_manifests.py does for the
    kustomizations (whose functions this uses): it keeps running, answers its
    probes and metrics, reports its shard, fails discovery visibly, and logs
    the credentials source the values chose; the config file passes
    --config.check; each StatefulSet replica runs as its pod name, and one
    past the end refuses to start. With webConfig the run goes through TLS
    (a TLS Secret the chart does not make is simulated with the test
    certificates of tests/web/certs, under cert-manager's key names): the
    probes answer as the kubelet sees them, the metrics need the password
    (and the client certificate when required).
Runs take place in parallel threads; output is printed per values file.

--bump (after any change to the chart, or to alerts.yml / the dashboard /
Cargo.toml's version): sets appVersion to Cargo.toml's version, regenerates
README.md's values table, raises the chart's patch version (unless Chart.yaml
already has a higher version than the lock), and records version and digest
in deploy/helm/chart-version.lock.
"""
import argparse
import base64
import concurrent.futures
import contextlib
import copy
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(HERE, "aliyun-backup-exporter")
LOCK = os.path.join(HERE, "chart-version.lock")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
DASHBOARD = os.path.join(ROOT, "dashboards", "aliyun-backup.json")
LINKS = {"files/alerts.yml": ALERTS, "files/aliyun-backup.json": DASHBOARD}
RELEASE, NAMESPACE = "backups", "monitoring"
PROVIDERS = {"existingSecret": "env", "rrsa": "oidc", "ecsRole": "ecs-ram-role"}
RRSA_ANNOTATION = "pod-identity.alibabacloud.com/role-name"
WEBHOOK_TOKEN = "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"
# The test certificates of the Rust tests (tests/web/certs/gen.sh), standing
# for a TLS Secret the values mount (cert-manager's key names), and the
# password of the test hash the ci/ values files use.
TEST_CERTS = os.path.join(ROOT, "tests", "web", "certs")
TLS_SECRET_FILES = {"tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt"}
TEST_HASHES = {"$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu": "carol123"}
CLIENT_CERT_REQUIRED = ("RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert")
README_BEGIN = "<!-- values table: generated by deploy/helm/check_chart.py --bump from values.yaml -->"
README_END = "<!-- end of values table -->"

sys.path.insert(0, os.path.join(ROOT, "deploy", "kubernetes"))
import check_manifests as cm  # noqa: E402  (the kustomizations' checker: its runs and helpers)


# ------------------------------------------------------------------ output
# cm's expect() calls its module's ok()/fail(); both are replaced so that
# parallel threads count under a lock and print into their own buffer.
LOCK_COUNTS = threading.Lock()
STDERR_LOCK = threading.RLock()
counts = {"passed": 0, "failed": []}
local = threading.local()


def out(line):
    buf = getattr(local, "buf", None)
    if buf is None:
        print(line, flush=True)
    else:
        buf.append(line)


def ok(msg):
    with LOCK_COUNTS:
        counts["passed"] += 1
    out("  ok    %s" % msg)


def fail(msg):
    with LOCK_COUNTS:
        counts["failed"].append(msg)
    out("  FAIL  %s" % msg)


def cm_print(*args, **_kw):
    out(" ".join(str(a) for a in args))


cm.ok, cm.fail, cm.print = ok, fail, cm_print
expect = cm.expect


@contextlib.contextmanager
def quiet_stderr(sink):
    """Helm's library logs to file descriptor 2 (e.g. every symbolic link it
    follows): collect those lines instead of printing them per call."""
    with STDERR_LOCK, tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.extend(tmp.read().decode("utf-8", "replace").splitlines())


# ---------------------------------------------------- version, digest, docs
def cargo_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        m = re.search(r'(?m)^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', f.read())
    return m.group(1)


def chart_yaml_text():
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        return f.read()


def semver(v):
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", str(v))
    return tuple(int(x) for x in m.groups()) if m else None


def chart_digest(helm):
    """sha256 of what `helm package` would ship: Chart.yaml (without its
    `version:` line), values.yaml, values.schema.json and every file and
    template Helm's loader keeps (.helmignore applied, symbolic links
    followed, so a change of alerts.yml or the dashboard counts)."""
    with quiet_stderr([]):
        chart = helm.Chart.load(CHART)
        entries = [(f["name"], f["data"]) for f in chart.files + chart.templates]
    entries.append(("Chart.yaml", re.sub(r"(?m)^version:.*\n", "", chart_yaml_text())))
    for name in ("values.yaml", "values.schema.json"):
        with open(os.path.join(CHART, name)) as f:
            entries.append((name, f.read()))
    h = hashlib.sha256()
    for name, data in sorted(entries):
        h.update(name.encode() + b"\0" + data.encode() + b"\0")
    return "sha256:" + h.hexdigest()


def read_lock():
    try:
        with open(LOCK) as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        return {}


def write_lock(version, digest):
    with open(LOCK, "w") as f:
        f.write("# Written by `python3 deploy/helm/check_chart.py --bump`: do not edit.\n"
                "# The chart version and the digest of the chart's files at that version;\n"
                "# CI fails when the files changed and the version did not.\n"
                "version: %s\ndigest: %s\n" % (version, digest))


def values_docs():
    """Rows (key, type, default, description) from values.yaml: every key
    whose comment block starts with `# --`; keys without one are descended
    into (a non-empty map) or reported undocumented."""
    with open(os.path.join(CHART, "values.yaml")) as f:
        lines = f.read().splitlines()
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    rows, undocumented, stack, comment = [], [], [], None
    for line in lines:
        s = line.strip()
        if s.startswith("# -- ") or s == "# --":  # ("# --flag" continues a description)
            comment = [s[4:].strip()]
            continue
        if s.startswith("#") and comment is not None:
            comment.append(s[1:].strip())
            continue
        m = re.match(r"^( *)([A-Za-z_][\w.-]*):(.*)$", line)
        if not m:
            if not s.startswith("#"):
                comment = None
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [m.group(2)]
        stack.append((indent, m.group(2)))
        if any(p == "__documented__" for p in path):
            continue
        value = values
        for k in path:
            value = value[k]
        if comment is not None:
            kind = {bool: "bool", int: "int", str: "string", list: "list", dict: "map"}.get(type(value), "any")
            rows.append((".".join(path), kind, json.dumps(value), " ".join(x for x in comment if x)))
            stack[-1] = (indent, "__documented__")  # its sub-keys are its default
        elif not (isinstance(value, dict) and value):
            undocumented.append(".".join(path))
        comment = None
    return rows, undocumented


def values_table():
    rows, _ = values_docs()
    text = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, kind, default, desc in rows:
        text.append("| `%s` | %s | `%s` | %s |" % (key, kind, default.replace("|", "\\|"), desc.replace("|", "\\|")))
    return "\n".join(text)


def readme_with_table():
    path = os.path.join(CHART, "README.md")
    with open(path) as f:
        text = f.read()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return text, None
    return text, text[:start + len(README_BEGIN)] + "\n" + values_table() + "\n" + text[end:]


def bump(helm):
    lock = read_lock()
    text = chart_yaml_text()
    cargo = cargo_version()
    text = re.sub(r'(?m)^appVersion:.*$', 'appVersion: "%s"' % cargo, text)
    with open(os.path.join(CHART, "Chart.yaml"), "w") as f:
        f.write(text)
    readme, regenerated = readme_with_table()
    if regenerated is None:
        print("check_chart: README.md has no values table markers (%s ... %s)" % (README_BEGIN, README_END))
        return 1
    if regenerated != readme:
        with open(os.path.join(CHART, "README.md"), "w") as f:
            f.write(regenerated)
        print("README.md: values table regenerated")
    version = yaml.safe_load(text)["version"]
    digest = chart_digest(helm)
    if lock.get("digest") == digest and str(lock.get("version")) == str(version):
        print("chart %s: up to date (%s)" % (version, digest))
        return 0
    current, locked = semver(version), semver(lock.get("version", "0.0.0"))
    if current is None:
        print("check_chart: Chart.yaml version %r is not MAJOR.MINOR.PATCH" % version)
        return 1
    if current < locked:
        print("check_chart: Chart.yaml version %s is lower than the locked %s" % (version, lock["version"]))
        return 1
    if current == locked:
        version = "%d.%d.%d" % (current[0], current[1], current[2] + 1)
        text = re.sub(r"(?m)^version:.*$", "version: %s" % version, text)
        with open(os.path.join(CHART, "Chart.yaml"), "w") as f:
            f.write(text)
    digest = chart_digest(helm)
    write_lock(version, digest)
    print("chart version %s (appVersion %s), digest %s recorded in %s" % (
        version, cargo, digest, os.path.relpath(LOCK, ROOT)))
    return 0


def check_metadata(helm):
    out("==== chart metadata, version lock, values table, linked files")
    meta = yaml.safe_load(chart_yaml_text())
    cargo = cargo_version()
    expect(str(meta.get("appVersion")) == cargo,
           "Chart.yaml appVersion %s is Cargo.toml's version %s" % (meta.get("appVersion"), cargo),
           "run: python3 deploy/helm/check_chart.py --bump")
    expect(semver(meta.get("version")) is not None, "Chart.yaml version %s is MAJOR.MINOR.PATCH" % meta.get("version"))
    lock = read_lock()
    digest = chart_digest(helm)
    expect(str(lock.get("version")) == str(meta.get("version")) and lock.get("digest") == digest,
           "chart %s has the digest recorded in %s (%s)" % (meta.get("version"), os.path.relpath(LOCK, ROOT), digest),
           "the chart changed since version %s was recorded (%s): run python3 deploy/helm/check_chart.py --bump "
           "(raises the chart version)" % (lock.get("version"), lock.get("digest")))
    rows, undocumented = values_docs()
    expect(not undocumented, "values.yaml: every value has a `# --` description (%d rows)" % len(rows),
           "undocumented: " + ", ".join(undocumented))
    readme, regenerated = readme_with_table()
    expect(regenerated is not None and regenerated == readme,
           "README.md: the values table is the one generated from values.yaml",
           "run: python3 deploy/helm/check_chart.py --bump")
    for rel, target in sorted(LINKS.items()):
        path = os.path.join(CHART, rel)
        expect(os.path.islink(path) and os.path.realpath(path) == os.path.realpath(target),
               "%s is a symbolic link to %s (no copy to drift)" % (rel, os.path.relpath(target, ROOT)))
    logs = []
    with quiet_stderr(logs):
        chart = helm.Chart.load(CHART)
        files = {f["name"]: f["data"] for f in chart.files}
    for rel, target in sorted(LINKS.items()):
        with open(target) as f:
            expect(files.get(rel) == f.read(), "Helm's loader reads %s through the link: the bytes of %s" % (
                rel, os.path.relpath(target, ROOT)))
    for line in sorted(set(logs)):
        if "symbolic link" in line:
            out("    helm: " + line.split(" ", 2)[-1])
    return meta


# -------------------------------------------- prometheus-operator CRD fields
# The fields of monitoring.coreos.com/v1 ServiceMonitor, PodMonitor and
# PrometheusRule (prometheus-operator's CRD openAPIV3Schema) that matter
# here, with what the CRDs require; unknown fields are refused, as
# `kubectl apply --validate=strict` would (the API server's pruning would
# silently drop them). Written out by hand: no CRD is downloaded.
DURATION = {"type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
RELABEL = {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
    "action": {"enum": [a for x in ("replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                                    "lowercase", "uppercase", "keepequal", "dropequal")
                        for a in (x, {"hashmod": "HashMod", "labelmap": "LabelMap", "labeldrop": "LabelDrop",
                                      "labelkeep": "LabelKeep", "keepequal": "KeepEqual",
                                      "dropequal": "DropEqual"}.get(x, x.capitalize()))]},
    "modulus": {"type": "integer"}, "regex": {"type": "string"}, "replacement": {"type": "string"},
    "separator": {"type": "string"}, "targetLabel": {"type": "string"},
    "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}}}}}
SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": STRMAP, "matchExpressions": {"type": "array", "items": {
        "type": "object", "required": ["key", "operator"],
        "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                       "values": {"type": "array", "items": {"type": "string"}}}}}}}
NAMESPACE_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}}
ENDPOINT_COMMON = {
    "path": {"type": "string"}, "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
    "interval": DURATION, "scrapeTimeout": DURATION, "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"}, "relabelings": RELABEL, "metricRelabelings": RELABEL,
    "params": {"type": "object"}, "tlsConfig": {"type": "object"}, "basicAuth": {"type": "object"},
    "authorization": {"type": "object"}, "oauth2": {"type": "object"}, "followRedirects": {"type": "boolean"},
    "enableHttp2": {"type": "boolean"}, "filterRunning": {"type": "boolean"}, "proxyUrl": {"type": "string"},
    "trackTimestampsStaleness": {"type": "boolean"}}
MONITOR_COMMON = {
    "jobLabel": {"type": "string"}, "namespaceSelector": NAMESPACE_SELECTOR, "selector": SELECTOR,
    "podTargetLabels": {"type": "array", "items": {"type": "string"}}, "sampleLimit": {"type": "integer"},
    "targetLimit": {"type": "integer"}, "labelLimit": {"type": "integer"}, "attachMetadata": {"type": "object"},
    "scrapeClass": {"type": "string"}}
METADATA = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"},
    "labels": STRMAP, "annotations": STRMAP}}


def cr_schema(spec):
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"type": "string"},
                           "metadata": METADATA, "spec": spec}}


CR_SCHEMAS = {
    "ServiceMonitor": cr_schema({
        "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
        "properties": dict(MONITOR_COMMON, targetLabels={"type": "array", "items": {"type": "string"}},
                           endpoints={"type": "array", "minItems": 1, "items": {
                               "type": "object", "additionalProperties": False,
                               "properties": dict(ENDPOINT_COMMON, port={"type": "string"},
                                                  targetPort={"type": ["string", "integer"]},
                                                  bearerTokenSecret={"type": "object"})}})}),
    "PodMonitor": cr_schema({
        "type": "object", "required": ["selector", "podMetricsEndpoints"], "additionalProperties": False,
        "properties": dict(MONITOR_COMMON, podMetricsEndpoints={"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "properties": dict(ENDPOINT_COMMON, port={"type": "string"}, portNumber={"type": "integer"})}})}),
    "PrometheusRule": cr_schema({
        "type": "object", "required": ["groups"], "additionalProperties": False, "properties": {
            "groups": {"type": "array", "items": {
                "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                    "name": {"type": "string", "minLength": 1}, "interval": DURATION, "limit": {"type": "integer"},
                    "labels": STRMAP, "query_offset": DURATION, "partial_response_strategy": {"type": "string"},
                    "rules": {"type": "array", "items": {
                        "type": "object", "required": ["expr"], "additionalProperties": False,
                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                        "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                       "expr": {"type": ["string", "integer"]}, "for": DURATION,
                                       "keep_firing_for": DURATION, "labels": STRMAP,
                                       "annotations": STRMAP}}}}}}}}),
}


def validate_docs(kv, jsonschema, where, docs, kube_versions):
    for rel, d in docs:
        name = "%s %s/%s" % (rel, d.get("kind"), (d.get("metadata") or {}).get("name"))
        if d.get("kind") in CR_SCHEMAS:
            errors = sorted(jsonschema.Draft202012Validator(CR_SCHEMAS[d["kind"]]).iter_errors(d), key=str)
            expect(not errors, "%s: %s has the fields prometheus-operator's CRD requires, none unknown" % (where, name),
                   "; ".join("%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in errors[:3]))
            continue
        for version in kube_versions:
            try:
                kv.validate(d, version, strict=True)
                ok("%s: %s validates against the Kubernetes %s schema (strict)" % (where, name, version))
            except kv.ValidationError as e:
                fail("%s: %s against Kubernetes %s: %s: %s" % (where, name, version,
                                                               ".".join(map(str, e.path)), e.message))
            except kv.SchemaNotFoundError:
                fail("%s: %s: no schema for %s %s in Kubernetes %s" % (where, name, d.get("apiVersion"),
                                                                      d.get("kind"), version))


# --------------------------------------------------------- one values file
class Render:
    """One values file: its values, rendered manifests and findings."""

    def __init__(self, path):
        self.path = path
        self.rel = os.path.relpath(path, ROOT)
        self.name = os.path.basename(path)
        with open(path) as f:
            text = f.read()
        self.values = yaml.safe_load(text) or {}
        m = re.match(r"#\s*expect-failure:\s*(.+)", text)
        self.expect_failure = m.group(1).strip() if m else None
        self.docs = []  # (template, doc)
        self.raw = {}   # template -> rendered text


def render(helm, chart, values):
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def docs_of(rendered):
    docs = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for d in yaml.safe_load_all(text):
            if d:
                docs.append((template.split("/", 1)[1], d))
    return docs


def by_kind(r, kind):
    return [d for _, d in r.docs if d.get("kind") == kind]


def container_env(c):
    return {e["name"]: e for e in c.get("env") or []}


def check_render(helm, chart, kv, jsonschema, r, kube_versions, merged):
    where = r.name
    findings = []
    with quiet_stderr(findings):
        report = helm.lint(CHART, r.values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + \
        [{"error": e} for e in report.get("errors", [])]
    expect(not problems, "%s: helm lint --strict: %d charts linted, no error or warning (%d info)%s" % (
        where, report.get("total_charts_linted", 0), len(report.get("messages", [])) - len(problems),
        " (helm lint does not run `fail`: helm template must)" if r.expect_failure else ""),
        "; ".join("%s: %s" % (m.get("path", ""), m["error"]) for m in problems))
    try:
        with quiet_stderr(findings):
            rendered = render(helm, chart, r.values)
    except helm.HelmError as e:
        if r.expect_failure:
            expect(r.expect_failure in str(e), "%s: helm template fails as documented (%s)" % (
                where, r.expect_failure), str(e))
        else:
            fail("%s: helm template: %s" % (where, e))
        return
    if r.expect_failure:
        fail("%s: helm template renders, but the file says it must fail with %r" % (where, r.expect_failure))
        return
    r.raw = rendered
    r.docs = docs_of(rendered)
    ok("%s: helm template renders %s" % (where, ", ".join(
        "%s/%s" % (d["kind"], d["metadata"]["name"]) for _, d in r.docs)))
    for rel, d in r.docs:
        expect(d.get("metadata", {}).get("namespace"), "%s: %s %s has a namespace" % (where, rel, d.get("kind")))
    validate_docs(kv, jsonschema, where, r.docs, kube_versions)
    check_workload(helm, chart, r, merged)
    check_scraping(r, merged)
    check_rules(r)
    check_dashboard(r, merged)


def web_tls(merged):
    """(TLS on, client certificates required) by the values' webConfig, by
    the toolkit's rule."""
    t = (merged.get("webConfig") or {}).get("tls_server_config") or {}
    on = any(t.get(k) for k in ("cert", "cert_file", "key", "key_file", "client_ca", "client_ca_file",
                                "client_auth_type"))
    return on, on and t.get("client_auth_type") in CLIENT_CERT_REQUIRED


def check_workload(helm, chart, r, merged):
    where = r.name
    shards = int(merged["shards"])
    kind = "StatefulSet" if shards > 1 else "Deployment"
    workloads = [d for _, d in r.docs if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")]
    if not expect(len(workloads) == 1 and workloads[0]["kind"] == kind,
                  "%s: one %s (shards: %d)" % (where, kind, shards), repr([w["kind"] for w in workloads])):
        return
    wl = workloads[0]
    spec, tmpl = wl["spec"], wl["spec"]["template"]
    pod, labels = tmpl["spec"], tmpl["metadata"].get("labels", {})
    r.workload, r.pod_labels = wl, labels
    expect(cm.selects(spec["selector"], labels), "%s: %s selector matches its pod labels" % (where, kind))
    expect(int(spec.get("replicas", 1)) == shards, "%s: replicas %s = shards %d" % (where, spec.get("replicas"), shards))
    containers = pod["containers"]
    expect(len(containers) == 1 and cm.EXPORTER_IMAGE in containers[0]["image"],
           "%s: one container, the exporter (%s)" % (where, containers[0]["image"]))
    c = r.container = containers[0]
    image = merged["image"]
    if not image.get("tag") and not image.get("digest"):
        expect(c["image"].endswith(":" + chart.metadata["appVersion"]),
               "%s: image tag defaults to appVersion %s" % (where, chart.metadata["appVersion"]))
    args = [str(a) for a in c.get("args") or []]
    flags = [a.split("=", 1)[0] for a in args]
    repeatable = {"--redis.instance-id", "--discovery.tag"}
    dup = sorted({f for f in flags if flags.count(f) > 1} - repeatable)
    expect(not dup, "%s: no flag given twice (%d args)" % (where, len(args)), ", ".join(dup))
    expect(not c.get("command"), "%s: no command (the image's ENTRYPOINT is the exporter)" % where)

    # Port, probes, resources, security.
    metrics = {p.get("name"): p for p in c.get("ports") or []}.get("metrics")
    listen = cm.flag_value(args, "--web.listen-address")
    expect(metrics and metrics["containerPort"] == cm.DEFAULT_PORT and not listen,
           "%s: port metrics is %d, where the exporter listens" % (where, cm.DEFAULT_PORT))
    r.telemetry_path = cm.flag_value(args, "--web.telemetry-path") or cm.DEFAULT_PATH
    probes = []
    tls, required = web_tls(merged)
    for probe_kind, path in (("liveness", "/healthz"), ("readiness", "/readyz")):
        probe = c.get(probe_kind + "Probe") or {}
        http = probe.get("httpGet") or {}
        if required:
            # The kubelet has no client certificate: a TCP check.
            expect(not http and (probe.get("tcpSocket") or {}).get("port") == "metrics",
                   "%s: %s probe is a TCP check on port metrics (client certificates required)" % (
                       where, probe_kind), repr(probe))
        else:
            scheme = "HTTPS" if tls else "HTTP"
            expect(http.get("path") == path and http.get("port") == "metrics"
                   and http.get("scheme", "HTTP") == scheme,
                   "%s: %s probe GET %s on port metrics, scheme %s" % (where, probe_kind, path, scheme), repr(http))
        probes.append((probe_kind, path))
    res = c.get("resources") or {}
    expect(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
           and res.get("limits", {}).get("memory"), "%s: cpu/memory requests and a memory limit" % where)
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    eff = {k: csc.get(k, psc.get(k)) for k in ("runAsNonRoot", "runAsUser", "seccompProfile")}
    secure = {
        "runAsNonRoot": eff["runAsNonRoot"] is True,
        "runAsUser not 0": eff["runAsUser"] not in (0, "0"),
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": "ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
        "seccompProfile RuntimeDefault": (eff["seccompProfile"] or {}).get("type") == "RuntimeDefault",
        "not privileged": not csc.get("privileged"),
    }
    expect(all(secure.values()), "%s: security context: %s" % (where, ", ".join(secure)),
           "missing: " + ", ".join(k for k, v in secure.items() if not v))

    # Service account: no Kubernetes API token.
    accounts = {d["metadata"]["name"]: d for d in by_kind(r, "ServiceAccount")}
    sa = pod.get("serviceAccountName")
    if merged["serviceAccount"]["create"]:
        expect(sa in accounts, "%s: serviceAccountName %s is the chart's ServiceAccount" % (where, sa))
    token = pod.get("automountServiceAccountToken")
    expect(token is False and all(a.get("automountServiceAccountToken") is False for a in accounts.values()),
           "%s: no service account token is mounted (automountServiceAccountToken: false)" % where)

    # Credentials as credentials.source says.
    source = merged["credentials"]["source"]
    env = container_env(c)
    provider = cm.flag_value(args, "--aliyun.credentials-provider")
    expect(provider == PROVIDERS.get(source), "%s: credentials.source %s pins --aliyun.credentials-provider=%s" % (
        where, source, provider))
    literal = [n for n, e in env.items() if re.search("SECRET|TOKEN$", n) and "value" in e]
    expect(not literal, "%s: no literal secret in env (%s)" % (where, ", ".join(env) or "no env"), ", ".join(literal))
    rrsa = merged["credentials"]["rrsa"]
    if source == "existingSecret":
        sec = merged["credentials"]["existingSecret"]
        for var, key in (("ALIBABA_CLOUD_ACCESS_KEY_ID", sec["accessKeyIdKey"]),
                         ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sec["accessKeySecretKey"])):
            ref = ((env.get(var) or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
            expect(ref.get("name") == sec["name"] and ref.get("key") == key,
                   "%s: %s from Secret %s key %s" % (where, var, sec["name"], key), repr(ref))
    elif source == "rrsa" and rrsa["roleArn"]:
        token_file = (env.get("ALIBABA_CLOUD_OIDC_TOKEN_FILE") or {}).get("value", "")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        src = [s.get("serviceAccountToken") for s in
               ((vols.get(mounts.get(os.path.dirname(token_file))) or {}).get("projected") or {}).get("sources", [])]
        expect(env.get("ALIBABA_CLOUD_ROLE_ARN", {}).get("value") == rrsa["roleArn"]
               and env.get("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", {}).get("value") == rrsa["oidcProviderArn"],
               "%s: RRSA without the webhook: role and OIDC provider ARNs in env" % where)
        expect(any(s and s.get("audience") == "sts.aliyuncs.com" and s.get("path") == os.path.basename(token_file)
                   for s in src),
               "%s: %s is a projected service account token, audience sts.aliyuncs.com" % (where, token_file))
    elif source == "rrsa":
        annotations = {}
        for a in accounts.values():
            annotations.update(a["metadata"].get("annotations") or {})
        expect(annotations.get(RRSA_ANNOTATION) == (rrsa["roleName"] or annotations.get(RRSA_ANNOTATION)),
               "%s: RRSA through the webhook: ServiceAccount annotated %s=%s" % (
                   where, RRSA_ANNOTATION, annotations.get(RRSA_ANNOTATION)))
        expect(not any(v.startswith("ALIBABA_CLOUD_ACCESS_KEY") or v.startswith("ALIBABA_CLOUD_ROLE_ARN")
                       for v in env), "%s: no AccessKey or role variables next to the webhook's" % where)
    elif source == "ecsRole":
        expect(not any(v.startswith("ALIBABA_CLOUD_ACCESS_KEY") for v in env),
               "%s: ECS role: no AccessKey variables" % where)

    # The config file: mounted, named by --config.file, rolled by its checksum.
    config_file = cm.flag_value(args, "--config.file")
    maps = {d["metadata"]["name"]: d for d in by_kind(r, "ConfigMap")}
    annotations = tmpl["metadata"].get("annotations") or {}
    if merged["config"]:
        mount = [m for m in c.get("volumeMounts") or [] if config_file and config_file.startswith(m["mountPath"] + "/")]
        vol = [v for v in pod.get("volumes") or [] if mount and v["name"] == mount[0]["name"]]
        cmap = maps.get(((vol[0] if vol else {}).get("configMap") or {}).get("name"))
        expect(cmap and os.path.basename(config_file) in cmap.get("data", {}),
               "%s: --config.file=%s is the chart's ConfigMap, mounted" % (where, config_file))
        expect(cmap and yaml.safe_load(cmap["data"][os.path.basename(config_file)]) == merged["config"],
               "%s: the ConfigMap's config.yml is the values' config" % where)
        raw = r.raw.get("aliyun-backup-exporter/templates/configmap.yaml", "")
        digest = hashlib.sha256(raw.encode()).hexdigest()
        expect(annotations.get("checksum/config") == digest,
               "%s: pod annotation checksum/config is the rendered ConfigMap's sha256" % where)
        changed = copy.deepcopy(r.values)
        changed.setdefault("config", {}).setdefault("accounts", [{}])[0]["rate_limit"] = 3
        with quiet_stderr([]):
            again = docs_of(render(helm, chart, changed))
        other = [d for _, d in again if d.get("kind") == kind][0]
        expect(other["spec"]["template"]["metadata"]["annotations"].get("checksum/config") != digest,
               "%s: a change of the config changes checksum/config (the pods roll)" % where)
    else:
        expect(not config_file and "checksum/config" not in annotations,
               "%s: no config: no --config.file, no checksum/config" % where)

    # The web config: a Secret, mounted, named by --web.config.file, rolled
    # by its checksum.
    web_file = cm.flag_value(args, "--web.config.file")
    secrets = {d["metadata"]["name"]: d for d in by_kind(r, "Secret")}
    if merged["webConfig"]:
        mount = [m for m in c.get("volumeMounts") or [] if web_file and web_file.startswith(m["mountPath"] + "/")]
        vol = [v for v in pod.get("volumes") or [] if mount and v["name"] == mount[0]["name"]]
        secret = secrets.get(((vol[0] if vol else {}).get("secret") or {}).get("secretName"))
        data = (secret or {}).get("stringData") or {}
        expect(secret and os.path.basename(web_file) in data,
               "%s: --web.config.file=%s is the chart's Secret, mounted" % (where, web_file))
        expect(secret and yaml.safe_load(data.get(os.path.basename(web_file), "")) == merged["webConfig"],
               "%s: the Secret's web-config.yml is the values' webConfig" % where)
        raw = r.raw.get("aliyun-backup-exporter/templates/web-config-secret.yaml", "")
        expect(annotations.get("checksum/web-config") == hashlib.sha256(raw.encode()).hexdigest(),
               "%s: pod annotation checksum/web-config is the rendered Secret's sha256" % where)
    else:
        expect(not web_file and "checksum/web-config" not in annotations and not secrets,
               "%s: no webConfig: no --web.config.file, no Secret, no checksum/web-config" % where)

    # Sharding.
    count = cm.flag_value(args, "--shard.count")
    from_hostname = "--shard.from-hostname" in args
    if shards > 1:
        expect(count == str(shards) and from_hostname,
               "%s: --shard.count=%s equals replicas %d, with --shard.from-hostname" % (where, count, shards))
        expect(spec.get("podManagementPolicy") == "Parallel", "%s: podManagementPolicy Parallel" % where)
        svc = [s for s in by_kind(r, "Service") if s["metadata"]["name"] == spec.get("serviceName")]
        if expect(svc, "%s: serviceName %s is a Service of the chart" % (where, spec.get("serviceName"))):
            expect(svc[0]["spec"].get("clusterIP") == "None" and cm.selects(svc[0]["spec"]["selector"], labels),
                   "%s: it is headless (clusterIP: None) and selects the pods" % where)
    else:
        expect(count is None and not from_hostname and not cm.flag_value(args, "--shard.index"),
               "%s: one replica, no --shard.* flags" % where)


def check_scraping(r, merged):
    where = r.name
    if not getattr(r, "workload", None):
        return
    services = by_kind(r, "Service")
    for s in services:
        expect(cm.selects(s["spec"]["selector"], r.pod_labels)
               and all(p.get("targetPort") in ("metrics", cm.DEFAULT_PORT) for p in s["spec"]["ports"]),
               "%s: Service %s selects the pods, targetPort metrics" % (where, s["metadata"]["name"]))
    for sm in by_kind(r, "ServiceMonitor"):
        matched = [s for s in services if cm.selects(sm["spec"]["selector"], s["metadata"].get("labels", {}))]
        expect(len(matched) == 1, "%s: ServiceMonitor selects one Service (%s)" % (
            where, ", ".join(s["metadata"]["name"] for s in matched)))
        expect(NAMESPACE in ((sm["spec"].get("namespaceSelector") or {}).get("matchNames") or [sm["metadata"]["namespace"]]),
               "%s: ServiceMonitor looks in the release's namespace" % where)
        for ep in sm["spec"]["endpoints"]:
            names = [p.get("name") for s in matched for p in s["spec"]["ports"]]
            expect(ep.get("port") in names and ep.get("path", "/metrics") == r.telemetry_path,
                   "%s: ServiceMonitor endpoint port %s, path %s" % (where, ep.get("port"), ep.get("path")))
        if matched and not sm["spec"].get("jobLabel"):
            job = matched[0]["metadata"]["name"]
            expect(cm.JOB_RE.match(job), "%s: job %r matches AliyunBackupExporterDown's job=~\".*aliyun-backup.*\"" % (
                where, job))
    for pm in by_kind(r, "PodMonitor"):
        expect(cm.selects(pm["spec"]["selector"], r.pod_labels), "%s: PodMonitor selects the pods" % where)
        for ep in pm["spec"]["podMetricsEndpoints"]:
            expect(ep.get("port") == "metrics" and ep.get("path", "/metrics") == r.telemetry_path,
                   "%s: PodMonitor endpoint port %s, path %s" % (where, ep.get("port"), ep.get("path")))
        job = "%s/%s" % (NAMESPACE, pm["metadata"]["name"])
        expect(cm.JOB_RE.match(job), "%s: job %r matches AliyunBackupExporterDown's job=~\".*aliyun-backup.*\"" % (
            where, job))
    tls, required = web_tls(merged)
    users = bool((merged.get("webConfig") or {}).get("basic_auth_users"))
    endpoints = [ep for sm in by_kind(r, "ServiceMonitor") for ep in sm["spec"]["endpoints"]] + \
        [ep for pm in by_kind(r, "PodMonitor") for ep in pm["spec"]["podMetricsEndpoints"]]
    for ep in endpoints:
        tls_config = ep.get("tlsConfig") or {}
        expect(ep.get("scheme", "http") == ("https" if tls else "http")
               and (not users or ep.get("basicAuth"))
               and (not required or (tls_config.get("cert") and tls_config.get("keySecret"))),
               "%s: the scrape speaks as webConfig asks: scheme %s%s%s" % (
                   where, ep.get("scheme", "http"), ", basicAuth" if ep.get("basicAuth") else "",
                   ", a client certificate" if tls_config.get("cert") else ""))
    expect(bool(by_kind(r, "ServiceMonitor")) == bool(merged["serviceMonitor"]["enabled"])
           and bool(by_kind(r, "PodMonitor")) == bool(merged["podMonitor"]["enabled"]),
           "%s: ServiceMonitor / PodMonitor exactly as enabled" % where)


def check_rules(r):
    where = r.name
    rules = by_kind(r, "PrometheusRule")
    if not rules:
        return
    with open(ALERTS) as f:
        source_text = f.read()
    groups = yaml.safe_load(source_text)["groups"]
    rendered = rules[0]["spec"]["groups"]
    expect(rendered == groups, "%s: PrometheusRule groups equal deploy/prometheus/alerts.yml parsed (%d groups)" % (
        where, len(groups)))
    pairs = [(a, b) for g, h in zip(groups, rendered) for a, b in zip(g["rules"], h.get("rules", []))]
    same = [a.get("alert") or a.get("record") for a, b in pairs if a["expr"] == b.get("expr")]
    expect(len(same) == sum(len(g["rules"]) for g in groups),
           "%s: every rule expression is byte for byte the one of alerts.yml (%d: %s)" % (
               where, len(same), ", ".join(same)))
    # The text itself: the template copies alerts.yml from `groups:` on,
    # indented by two spaces under `spec:`.
    raw = r.raw.get("aliyun-backup-exporter/templates/prometheusrule.yaml", "")
    body = raw.split("\nspec:\n", 1)[-1].splitlines()
    dedented = "\n".join(l[2:] if l.startswith("  ") else l for l in body).rstrip("\n") + "\n"
    block = source_text[re.search(r"(?m)^groups:", source_text).start():]
    expect(dedented == block.rstrip("\n") + "\n",
           "%s: the PrometheusRule's spec is the text of alerts.yml from `groups:` on (comments included)" % where)
    promtool = shutil.which("promtool")
    if not promtool:
        out("  skip  promtool check rules: promtool not on PATH")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump({"groups": rendered}, f)
        f.flush()
        p = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    expect(p.returncode == 0, "%s: promtool check rules accepts the rendered rules (%s)" % (
        where, (p.stdout.strip().splitlines() or [""])[-1].strip()), p.stdout + p.stderr)


def check_dashboard(r, merged):
    where = r.name
    maps = [d for d in by_kind(r, "ConfigMap") if "aliyun-backup.json" in (d.get("data") or {})]
    if not merged["grafanaDashboard"]["enabled"]:
        expect(not maps, "%s: no dashboard ConfigMap (grafanaDashboard.enabled false)" % where)
        return
    if not expect(len(maps) == 1, "%s: one dashboard ConfigMap" % where):
        return
    with open(DASHBOARD) as f:
        text = f.read()
    data = maps[0]["data"]["aliyun-backup.json"]
    expect(data == text, "%s: its aliyun-backup.json is dashboards/aliyun-backup.json byte for byte (%d bytes)" % (
        where, len(text)))
    json.loads(data)
    labels = maps[0]["metadata"].get("labels", {})
    expect(labels.get("grafana_dashboard") == "1", "%s: labelled grafana_dashboard: \"1\" for the Grafana sidecar" % where)
    ns = merged["grafanaDashboard"]["namespace"] or NAMESPACE
    expect(maps[0]["metadata"]["namespace"] == ns, "%s: in namespace %s" % (where, ns))


# ------------------------------------------------------- the real exporter
class Pod:
    """What a pod of the rendered workload would see, on this machine: files
    of its volumes under a temporary root, the webhook's injection (RRSA),
    and its host name."""

    def __init__(self, r, merged):
        self.root = tempfile.mkdtemp(prefix="check-chart-pod-")
        self.log = os.path.join(self.root, "exporter.log")
        self.extra_env = {}
        self.metadata = merged["credentials"]["source"] == "ecsRole"
        c, pod = r.container, r.workload["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        maps = {d["metadata"]["name"]: d for d in by_kind(r, "ConfigMap")}
        secrets = {d["metadata"]["name"]: d for d in by_kind(r, "Secret")}
        chart_secrets = []
        self.mounts = []
        for m in c.get("volumeMounts") or []:
            d = self.host(m["mountPath"])
            os.makedirs(d, exist_ok=True)
            self.mounts.append(m["mountPath"])
            v = vols.get(m["name"], {})
            if "configMap" in v:
                for key, data in (maps.get(v["configMap"]["name"], {}).get("data") or {}).items():
                    with open(os.path.join(d, key), "w") as f:
                        f.write(data)
            if "secret" in v:
                secret = secrets.get(v["secret"]["secretName"])
                if secret is not None:
                    # Written once every mount is known: paths in the file
                    # (the web config's cert_file) are rewritten too.
                    for key, data in (secret.get("stringData") or {}).items():
                        chart_secrets.append((os.path.join(d, key), data))
                else:
                    # A TLS Secret made beforehand (cert-manager's keys).
                    for key, name in TLS_SECRET_FILES.items():
                        shutil.copy(os.path.join(TEST_CERTS, name), os.path.join(d, key))
            for s in (v.get("projected") or {}).get("sources", []):
                if "serviceAccountToken" in s:
                    with open(os.path.join(d, s["serviceAccountToken"]["path"]), "w") as f:
                        f.write("eyJhbGciOiJSUzI1NiJ9.test.test")
        for path, data in chart_secrets:
            for m in sorted(self.mounts, key=len, reverse=True):
                data = data.replace(m + "/", self.host(m) + "/")
            with open(path, "w") as f:
                f.write(data)
        # ack-pod-identity-webhook: a ServiceAccount annotated with a role
        # gets the variables and the token mounted.
        sa = [d for d in by_kind(r, "ServiceAccount")
              if (d["metadata"].get("annotations") or {}).get(RRSA_ANNOTATION)]
        if sa and "ALIBABA_CLOUD_ROLE_ARN" not in container_env(c):
            role = sa[0]["metadata"]["annotations"][RRSA_ANNOTATION]
            os.makedirs(os.path.dirname(self.host(WEBHOOK_TOKEN)), exist_ok=True)
            with open(self.host(WEBHOOK_TOKEN), "w") as f:
                f.write("eyJhbGciOiJSUzI1NiJ9.test.test")
            self.extra_env = {"ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1234567890123456:role/" + role,
                              "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1234567890123456:oidc-provider/ack-rrsa-test",
                              "ALIBABA_CLOUD_OIDC_TOKEN_FILE": self.host(WEBHOOK_TOKEN)}

    def host(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def rewrite(self, value):
        """A path inside a mount becomes its file under the temporary root."""
        flag, eq, path = value.partition("=") if value.startswith("--") else ("", "", value)
        for m in sorted(self.mounts, key=len, reverse=True):
            if path == m or path.startswith(m + "/"):
                return flag + eq + self.host(path)
        return value

    def environ(self, c, hostname=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cm.EMPTY_HOME}
        if not self.metadata:
            # Only the ECS role setup may ask the metadata service (at
            # loopback, like every endpoint).
            env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
        for e in c.get("env") or []:
            # A value from a Secret or the downward API: a placeholder.
            env[e["name"]] = self.rewrite(str(e["value"])) if "value" in e else "test"
        env.update(self.extra_env)
        if hostname is not None:
            env["HOSTNAME"] = hostname
        return env

    def args(self, c, port):
        args = [self.rewrite(str(a)) for a in c.get("args") or []]
        for flag in ("--web.listen-address", "--aliyun.endpoint", "--aliyun.sts-endpoint",
                     "--aliyun.metadata-endpoint"):
            args = cm.without_flag(args, flag)
        return args + ["--aliyun.endpoint=" + cm.FAKE_ENDPOINT, "--aliyun.sts-endpoint=" + cm.FAKE_ENDPOINT,
                       "--aliyun.metadata-endpoint=" + cm.FAKE_ENDPOINT, "--web.listen-address=127.0.0.1:%d" % port]

    def start(self, binary, c, hostname=None):
        """check_manifests.start_exporter's contract, with the pod's own
        environment (no AccessKey unless the pod has one) and the log kept."""
        port = cm.free_port()
        args = self.args(c, port)
        env = self.environ(c, hostname)
        offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        with open(self.log, "a") as log:
            proc = subprocess.Popen([binary] + args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        # run_exporter() reads proc.stderr when the exporter exits early.
        proc.stderr = open(self.log)
        proc.stderr.seek(offset)
        shown = "%s%s %s" % ("HOSTNAME=%s " % hostname if hostname else "", os.path.relpath(binary, ROOT)
                             if binary.startswith(ROOT) else binary, " ".join(args))
        return proc, port, shown


# run_exporter()/run_refused() call check_manifests.start_exporter; each
# thread points it at the Pod of its values file.
def threaded_start(binary, container, hostname=None):
    return local.pod.start(binary, container, hostname)


cm.start_exporter = threaded_start


def run_binary(binary, r, merged):
    where = r.name
    if not getattr(r, "container", None):
        return
    pod = local.pod = Pod(r, merged)
    c = r.container
    args = [str(a) for a in c.get("args") or []]
    regions = set((cm.flag_value(args, "--discovery.regions") or "").split(",")) - {""}
    for account in (merged["config"] or {}).get("accounts", []):
        redis = account.get("redis") or {}
        if "discovery" in redis:
            regions |= set(redis.get("regions") or [])
    if merged["config"]:
        env = pod.environ(c)
        p = subprocess.run([binary] + [a for a in pod.args(c, 0) if not a.startswith("--web.listen-address")]
                           + ["--config.check"], env=env, capture_output=True, text=True, timeout=30)
        expect(p.returncode == 0, "%s: the rendered config file passes --config.check: %s" % (
            where, (p.stdout + p.stderr).strip().splitlines()[-1] if (p.stdout + p.stderr).strip() else ""),
            "exit %d" % p.returncode)
    shards = int(merged["shards"])
    if merged["webConfig"]:
        run_web(binary, r, merged)
    elif shards > 1:
        name = r.workload["metadata"]["name"]
        for i in range(shards):
            cm.run_exporter(binary, where, c, r.telemetry_path, [("liveness", "/healthz"), ("readiness", "/readyz")],
                            shard=(i, shards), discovery_regions=sorted(regions) or None,
                            hostname="%s-%d" % (name, i))
        cm.run_refused(binary, where, c, "%s-%d" % (name, shards), "a replica past --shard.count")
    else:
        cm.run_exporter(binary, where, c, r.telemetry_path, [("liveness", "/healthz"), ("readiness", "/readyz")],
                        discovery_regions=sorted(regions) or None)
    with open(pod.log) as f:
        log = f.read()
    sources = set(re.findall(r'message="account ready" account=(\S+) credentials=(\S+)', log))  # logfmt
    for line in log.splitlines():  # json
        if line.startswith("{") and '"account ready"' in line:
            entry = json.loads(line)
            sources.add((entry.get("account"), entry.get("credentials")))
    sources = sorted(sources)
    want = PROVIDERS.get(merged["credentials"]["source"])
    expect(sources and all(s == want for _, s in sources) if want else bool(sources),
           "%s: the exporter found the credentials the values chose: %s" % (
               where, ", ".join("%s=%s" % a for a in sources)), "want credentials=%s" % want)
    shutil.rmtree(pod.root, ignore_errors=True)


def https_get(url, ca=None, client_cert=False, auth=None):
    """(status, body) of a GET; status None when the connection failed. No
    `ca`: the certificate is not verified (as the kubelet's HTTPS probes)."""
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False  # the test certificate names localhost
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert:
        ctx.load_cert_chain(os.path.join(TEST_CERTS, "client.crt"), os.path.join(TEST_CERTS, "client.key"))
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx if url.startswith("https:") else None) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        return None, str(e)


def run_web(binary, r, merged):
    """The exporter behind the values' webConfig, probed as the kubelet does
    and scraped as Prometheus does (TLS, client certificate, password)."""
    where = r.name
    c = r.container
    tls, required = web_tls(merged)
    users = (merged["webConfig"] or {}).get("basic_auth_users") or {}
    proc, port, shown = local.pod.start(binary, c)
    out("    run: %s" % shown)
    try:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if proc.returncode is not None:
            err = (proc.stderr.read() or "").strip().splitlines()
            fail("%s: the exporter exited with %d within 2 s: %s" % (where, proc.returncode, err[-1] if err else ""))
            return
        ok("%s: the exporter accepts the container's args and its web config, and keeps running" % where)
        base = "%s://127.0.0.1:%d" % ("https" if tls else "http", port)
        for kind, path in (("liveness", "/healthz"), ("readiness", "/readyz")):
            probe = c.get(kind + "Probe") or {}
            if "tcpSocket" in probe:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=3).close()
                    status = "open"
                except OSError as e:
                    status = str(e)
                expect(status == "open", "%s: %s probe: TCP port %d %s" % (where, kind, port, status))
            else:
                status, _ = https_get(base + path)
                want = (200,) if kind == "liveness" else (200, 503)
                expect(status in want, "%s: %s probe %s %s answers %s without a password" % (
                    where, kind, probe.get("httpGet", {}).get("scheme", "HTTP"), path, status))
        ca = os.path.join(TEST_CERTS, "ca.crt") if tls else None
        metrics = base + r.telemetry_path
        if required:
            status, _ = https_get(metrics, ca=ca)
            expect(status is None, "%s: %s without a client certificate is refused (%s)" % (where, metrics, status))
        if users:
            status, _ = https_get(metrics, ca=ca, client_cert=required)
            expect(status == 401, "%s: %s without the password answers %s" % (where, metrics, status), "want 401")
        known = [(u, TEST_HASHES[h]) for u, h in users.items() if h in TEST_HASHES]
        if users and not known:
            out("  skip  %s: the users' hashes are not test vectors: the password is unknown" % where)
            return
        status, body = https_get(metrics, ca=ca, client_cert=required, auth=known[0] if known else None)
        expect(status == 200 and "aliyun_backup_" in body, "%s: %s answers %s with aliyun_backup_ metrics%s%s" % (
            where, metrics, status, " (client certificate)" if required else "",
            " (password of %s)" % known[0][0] if known else ""))
    finally:
        cm.stop(proc)


def check_file(helm, chart, kv, jsonschema, binary, path, kube_versions):
    local.buf = ["==== %s" % os.path.relpath(path, ROOT)]
    try:
        r = Render(path)
        with quiet_stderr([]):
            merged = chart.merge_values(r.values)
        check_render(helm, chart, kv, jsonschema, r, kube_versions, merged)
        if binary and r.docs:
            run_binary(binary, r, merged)
    except Exception as e:  # a bug here is a failure of this file, not a crash
        fail("%s: %s: %s" % (os.path.basename(path), type(e).__name__, e))
    return local.buf


def check_refusals(helm, chart):
    """Values the chart must refuse, with a message naming what to change."""
    out("==== values the chart refuses")
    cases = [
        ({"shards": 0}, "minimum"),
        ({"credentials": {"source": "accessKey"}}, "credentials/source"),
        ({"serviceMonitor": {"enable": True}}, "additional properties 'enable'"),
        ({"extraArgs": ["--shard.count=2"]}, "use shards"),
        ({"extraArgs": ["--web.listen-address=:9000"]}, "--web.listen-address is set by the chart"),
        ({"credentials": {"source": "rrsa"}}, "set credentials.rrsa.roleName"),
        ({"credentials": {"source": "rrsa", "rrsa": {"roleArn": "acs:ram::1:role/x"}}}, "needs oidcProviderArn"),
        ({"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}, "choose one"),
        ({"fullnameOverride": "redis-backups", "podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
         "keep \"aliyun-backup\" in the name"),
        ({"webConfig": {"tls_config": {"cert_file": "/x"}}}, "additional properties 'tls_config'"),
        ({"extraArgs": ["--web.config.file=/etc/web.yml"]}, "--web.config.file is set by the chart: use webConfig"),
    ]
    for values, message in cases:
        try:
            with quiet_stderr([]):
                render(helm, chart, values)
            fail("refused: %s renders" % json.dumps(values))
        except helm.HelmError as e:
            expect(message in str(e), "refused: %s (%s)" % (json.dumps(values), str(e).strip().splitlines()[-1][:150]),
                   "want %r in %s" % (message, e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.environ.get("EXPORTER_BIN", cm.DEFAULT_BIN))
    ap.add_argument("--static-only", action="store_true", help="do not run the binary")
    ap.add_argument("--bump", action="store_true",
                    help="after changing the chart: sync appVersion, regenerate the values table, "
                         "raise the chart version, record its digest")
    args = ap.parse_args()
    try:
        import helm_python as helm
        import jsonschema
        import kubernetes_validate as kv
    except ImportError as e:
        print("check_chart: %s: python3 -m pip install helm-python-sdk kubernetes-validate" % e)
        return 1
    if args.bump:
        return bump(helm)
    binary = None if args.static_only else os.path.abspath(args.binary)
    if binary and not os.access(binary, os.X_OK):
        print("check_chart: exporter binary not found: %s (build it, set EXPORTER_BIN, or --static-only)" % binary)
        return 1
    out("helm %s (helm-python-sdk %s, libhelm_c %s), kubernetes-validate %s" % (
        helm.helm_sdk_version(), helm.__version__, helm.helm_c_version(), kv.__version__))
    meta = check_metadata(helm)
    kube_min = re.search(r"(\d+\.\d+)", str(meta.get("kubeVersion", ""))).group(1)
    kube_versions = [kube_min, ".".join(kv.latest_version().split(".")[:2])]
    with quiet_stderr([]):
        chart = helm.Chart.load(CHART)
    check_refusals(helm, chart)
    files = sorted(glob.glob(os.path.join(CHART, "ci", "*.yaml")))
    expect(len(files) >= 6, "ci/ has a values file per setup (%s)" % ", ".join(os.path.basename(f) for f in files))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(files) or 1) as pool:
        futures = [pool.submit(check_file, helm, chart, kv, jsonschema, binary, f, kube_versions) for f in files]
        for fut in futures:
            for line in fut.result():
                print(line, flush=True)
    print("helm chart checks: %d passed, %d failed" % (counts["passed"], len(counts["failed"])), flush=True)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

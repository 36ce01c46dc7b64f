#!/usr/bin/env python3
"""Check the Kubernetes manifests against the real exporter binary.

  python3 deploy/kubernetes/check_manifests.py [--binary PATH]

Parses every YAML file under deploy/kubernetes/ and checks:
  * kustomization.yaml lists existing files, and every manifest of its folder
    (except *.example.yaml);
  * each exporter container (image name containing aliyun-backup-exporter):
    - the port named `metrics` is the port the binary listens on (its
      --web.listen-address, else the default 9817);
    - credentials come from a Secret (secretKeyRef) through
      ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET;
    - requests, a memory limit and a restrictive securityContext are set;
    - liveness probes /healthz (and readiness, when present, /readyz) on `metrics`;
    - the binary, started with the container's args (plus fake credentials,
      --aliyun.endpoint=http://127.0.0.1:9 and a free 127.0.0.1 listen
      address) is still running after 2 s (exit 2 = configuration error),
      answers 200 or 503 on every probe path and 200 on its metrics path;
    - it does not share a port with another container of the pod;
  * Service selectors select a workload and their targetPorts resolve to the
    exporter's metrics port; ServiceMonitor and PodMonitor selectors, port
    names and paths match; their job names match AliyunBackupExporterDown;
  * the PrometheusRule holds exactly the groups of deploy/prometheus/alerts.yml.
Environment: EXPORTER_BIN overrides the binary path.
"""
import argparse
import glob
import os
import re
import signal
import socket
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "aliyun-backup-exporter")
EXPORTER_IMAGE = "aliyun-backup-exporter"
DEFAULT_PORT = 9817
DEFAULT_PATH = "/metrics"
FAKE_ENDPOINT = "http://127.0.0.1:9"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
JOB_RE = re.compile(r".*aliyun-backup.*")

problems = []
passes = 0


def ok(msg):
    global passes
    passes += 1
    print("  ok    %s" % msg, flush=True)


def fail(msg):
    problems.append(msg)
    print("  FAIL  %s" % msg, flush=True)


def expect(cond, msg, why=""):
    if cond:
        ok(msg)
    else:
        fail(msg + (": " + why if why else ""))
    return cond


# ------------------------------------------------------------------ helpers
def load_docs():
    docs = []  # (relpath, doc)
    for path in sorted(glob.glob(os.path.join(HERE, "**", "*.y*ml"), recursive=True)):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((os.path.relpath(path, ROOT), doc))
    return docs


def pod_spec(doc):
    if doc["kind"] == "Pod":
        return doc.get("metadata", {}).get("labels", {}), doc["spec"]
    if doc["kind"] == "Job":
        t = doc["spec"]["template"]
    else:
        t = doc["spec"]["template"]
    return t.get("metadata", {}).get("labels", {}), t["spec"]


def flag_value(args, flag):
    """Value of --flag=v or --flag v in args (last one wins), else None."""
    value = None
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            value = a.split("=", 1)[1]
        elif a == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


def without_flag(args, flag):
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == flag:
            skip = True
            continue
        if a.startswith(flag + "="):
            continue
        out.append(a)
    return out


def env_value(container, name):
    for e in container.get("env", []) or []:
        if e["name"] == name and "value" in e:
            return e["value"]
    return None


EMPTY_HOME = tempfile.mkdtemp(prefix="check-manifests-home-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def selects(selector, labels):
    if not selector:
        return False
    match = selector.get("matchLabels", selector) if "matchLabels" in selector or "matchExpressions" in selector else selector
    if "matchExpressions" in selector:
        fail("matchExpressions are not supported by this check")
        return False
    return all(labels.get(k) == v for k, v in (match or {}).items())


# ------------------------------------------------------------ exporter runs
def run_exporter(binary, where, container, listen_port_expected, telemetry_path, probes):
    """Start the binary as the container would and probe it."""
    args = list(container.get("args", []) or [])
    if container.get("command"):
        # The image's ENTRYPOINT is the binary; a command would replace it.
        fail("%s: sets command %r (the image's ENTRYPOINT is the exporter)" % (where, container["command"]))
    port = free_port()
    run_args = args
    for flag in ("--web.listen-address", "--aliyun.endpoint", "--aliyun.sts-endpoint", "--aliyun.metadata-endpoint"):
        run_args = without_flag(run_args, flag)
    # Every endpoint on loopback: the check never reaches Alibaba, STS or the
    # ECS metadata address, whatever the manifest says.
    run_args += ["--aliyun.endpoint=" + FAKE_ENDPOINT, "--web.listen-address=127.0.0.1:%d" % port,
                 "--aliyun.sts-endpoint=" + FAKE_ENDPOINT, "--aliyun.metadata-endpoint=" + FAKE_ENDPOINT]
    # An empty HOME: no developer's own profile files are read.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": EMPTY_HOME,
           "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    for e in container.get("env", []) or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "valueFrom" in e:
            env[e["name"]] = "test"
    if env.get("ALIYUN_BACKUP_EXPORTER_WEB_LISTEN_ADDRESS"):
        env["ALIYUN_BACKUP_EXPORTER_WEB_LISTEN_ADDRESS"] = "127.0.0.1:%d" % port
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = "test"
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "test"
    print("    run: %s %s" % (os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary, " ".join(run_args)), flush=True)
    proc = subprocess.Popen([binary] + run_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if proc.returncode is not None:
            err = (proc.stderr.read() or "").strip().splitlines()
            hint = " (configuration error)" if proc.returncode == 2 else ""
            fail("%s: the exporter exited with %d%s within 2 s: %s" % (where, proc.returncode, hint, err[-1] if err else ""))
            return
        ok("%s: the exporter accepts the container's args and keeps running" % where)
        base = "http://127.0.0.1:%d" % port
        for kind, path in probes:
            status, _ = http_status(base + path)
            expect(status in (200, 503), "%s: %s probe %s answers %s" % (where, kind, path, status),
                   "want 200 or 503")
        status, body = http_status(base + telemetry_path)
        expect(status == 200 and "aliyun_backup_" in body,
               "%s: metrics path %s answers %s with aliyun_backup_ metrics" % (where, telemetry_path, status))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()


# ------------------------------------------------------------ static checks
def check_exporter_container(binary, rel, wl, pod_labels, spec, c):
    where = "%s %s/%s container %s" % (rel, wl["kind"], wl["metadata"]["name"], c["name"])
    args = [str(a) for a in c.get("args", []) or []]
    ports = {p.get("name"): p for p in c.get("ports", []) or []}
    metrics = ports.get("metrics")
    if not expect(metrics is not None, "%s: has a port named metrics" % where):
        return None
    listen = flag_value(args, "--web.listen-address") or env_value(c, "ALIYUN_BACKUP_EXPORTER_WEB_LISTEN_ADDRESS")
    listen_port = int(listen.rsplit(":", 1)[1]) if listen else DEFAULT_PORT
    expect(metrics["containerPort"] == listen_port,
           "%s: containerPort %s is the listen port %s (%s)" % (where, metrics["containerPort"], listen_port,
                                                                 "--web.listen-address" if listen else "default"))
    telemetry_path = flag_value(args, "--web.telemetry-path") or env_value(c, "ALIYUN_BACKUP_EXPORTER_WEB_TELEMETRY_PATH") or DEFAULT_PATH

    # Other containers of the pod share the network namespace.
    others = [(o["name"], p["containerPort"]) for o in spec["containers"] + (spec.get("initContainers") or [])
              if o is not c for p in o.get("ports", []) or []]
    expect(all(p != listen_port for _, p in others),
           "%s: port %d is not used by another container of the pod" % (where, listen_port), repr(others))

    refs = {}
    for e in c.get("env", []) or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            refs[e["name"]] = ref
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        expect(var in refs and refs[var].get("name") and refs[var].get("key"),
               "%s: %s comes from a Secret (secretKeyRef)" % (where, var))
    for e in c.get("env", []) or []:
        expect(not ("SECRET" in e["name"] and "value" in e), "%s: no literal secret in env %s" % (where, e["name"]))

    res = c.get("resources", {})
    expect(all(res.get("requests", {}).get(k) for k in ("cpu", "memory")) and res.get("limits", {}).get("memory"),
           "%s: cpu/memory requests and a memory limit are set" % where, repr(res))

    psc, csc = spec.get("securityContext", {}) or {}, c.get("securityContext", {}) or {}
    eff = lambda k: csc.get(k, psc.get(k))
    expect(eff("runAsNonRoot") is True, "%s: runAsNonRoot" % where)
    expect(eff("runAsUser") not in (0, "0"), "%s: runAsUser is not 0" % where)
    expect(csc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem" % where)
    expect(csc.get("allowPrivilegeEscalation") is False, "%s: allowPrivilegeEscalation false" % where)
    expect("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), "%s: capabilities drop ALL" % where)
    expect((eff("seccompProfile") or {}).get("type") == "RuntimeDefault", "%s: seccompProfile RuntimeDefault" % where)
    expect(not csc.get("privileged"), "%s: not privileged" % where)

    probes = []
    for kind, want in (("liveness", "/healthz"), ("readiness", "/readyz")):
        probe = c.get(kind + "Probe")
        if probe is None:
            if kind == "liveness":
                fail("%s: has no liveness probe" % where)
            continue
        http = probe.get("httpGet") or {}
        expect(http.get("path") == want, "%s: %s probe path is %s" % (where, kind, want), "is %r" % http.get("path"))
        port = http.get("port")
        expect(port == "metrics" or port == listen_port, "%s: %s probe port %r is the metrics port" % (where, kind, port))
        probes.append((kind, http.get("path", "")))
    if wl["kind"] == "Deployment" and wl["metadata"]["name"] == "aliyun-backup-exporter":
        expect(c.get("readinessProbe") is not None, "%s: standalone Deployment has a readiness probe" % where)

    if binary:
        run_exporter(binary, where, c, listen_port, telemetry_path, probes)
    return {"where": where, "pod_labels": pod_labels, "port": metrics, "listen_port": listen_port,
            "path": telemetry_path, "namespace": wl["metadata"].get("namespace")}


def check_kustomizations(docs_by_file):
    for kfile in sorted(glob.glob(os.path.join(HERE, "**", "kustomization.yaml"), recursive=True)):
        d = os.path.dirname(kfile)
        rel = os.path.relpath(kfile, ROOT)
        with open(kfile) as f:
            k = yaml.safe_load(f)
        resources = k.get("resources", [])
        for r in resources:
            expect(os.path.exists(os.path.join(d, r)), "%s: resource %s exists" % (rel, r))
        for path in sorted(glob.glob(os.path.join(d, "*.y*ml"))):
            name = os.path.basename(path)
            if name == "kustomization.yaml" or name.endswith(".example.yaml"):
                continue
            expect(name in resources, "%s lists %s" % (rel, name))
        images = {i["name"] for i in k.get("images", [])}
        for r in resources:
            for doc in docs_by_file.get(os.path.relpath(os.path.join(d, r), ROOT), []):
                if doc.get("kind") in WORKLOADS:
                    _, spec = pod_spec(doc)
                    for c in spec["containers"]:
                        if EXPORTER_IMAGE in c["image"]:
                            expect(c["image"].split(":")[0] in images,
                                   "%s: images: covers %s" % (rel, c["image"].split(":")[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.environ.get("EXPORTER_BIN", DEFAULT_BIN))
    ap.add_argument("--static-only", action="store_true", help="do not run the binary")
    args = ap.parse_args()
    binary = None if args.static_only else os.path.abspath(args.binary)
    if binary and not os.access(binary, os.X_OK):
        print("check_manifests: exporter binary not found: %s (build it, set EXPORTER_BIN, or --static-only)" % binary)
        return 1

    docs = load_docs()
    docs_by_file = {}
    for rel, doc in docs:
        docs_by_file.setdefault(rel, []).append(doc)
        if rel.endswith("kustomization.yaml"):
            continue
        if not expect(doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"),
                      "%s: %s/%s has apiVersion, kind and name" % (rel, doc.get("kind"), doc.get("metadata", {}).get("name"))):
            continue
    check_kustomizations(docs_by_file)

    # Per folder (one kustomization each): workloads, then what points at them.
    folders = sorted({os.path.dirname(rel) for rel, _ in docs})
    n_exporters = 0
    for folder in folders:
        fdocs = [(rel, d) for rel, d in docs if os.path.dirname(rel) == folder and not rel.endswith("kustomization.yaml")]
        exporters = []
        workloads = []
        for rel, d in fdocs:
            if d.get("kind") in WORKLOADS:
                labels, spec = pod_spec(d)
                workloads.append((rel, d, labels, spec))
                sel = (d.get("spec", {}).get("selector") or {}).get("matchLabels")
                if d["kind"] != "Pod":
                    expect(selects({"matchLabels": sel}, labels),
                           "%s: %s selector matches its pod template labels" % (rel, d["kind"]))
                for c in spec["containers"]:
                    if EXPORTER_IMAGE in c.get("image", ""):
                        info = check_exporter_container(binary, rel, d, labels, spec, c)
                        n_exporters += 1
                        if info:
                            exporters.append(info)
        services = {}
        for rel, d in fdocs:
            if d.get("kind") == "Service":
                sel = d["spec"].get("selector") or {}
                targets = [e for e in exporters if selects({"matchLabels": sel}, e["pod_labels"])]
                if not expect(targets, "%s: Service %s selects an exporter pod" % (rel, d["metadata"]["name"])):
                    continue
                for p in d["spec"]["ports"]:
                    tp = p.get("targetPort", p["port"])
                    for e in targets:
                        expect(tp in (e["port"]["name"], e["port"]["containerPort"]),
                               "%s: Service port %s targets the exporter's metrics port (%r)" % (rel, p.get("name"), tp))
                services[d["metadata"]["name"]] = d
        for rel, d in fdocs:
            kind = d.get("kind")
            if kind == "ServiceMonitor":
                svcs = [s for s in services.values()
                        if selects(d["spec"]["selector"], s["metadata"].get("labels", {}))]
                if not expect(svcs, "%s: ServiceMonitor selects a Service" % rel):
                    continue
                for ep in d["spec"]["endpoints"]:
                    for s in svcs:
                        names = [p.get("name") for p in s["spec"]["ports"]]
                        expect(ep.get("port") in names, "%s: endpoint port %r is a port name of Service %s" %
                               (rel, ep.get("port"), s["metadata"]["name"]))
                        for e in exporters:
                            if selects({"matchLabels": s["spec"].get("selector")}, e["pod_labels"]):
                                expect(ep.get("path", "/metrics") == e["path"],
                                       "%s: endpoint path %s is the exporter's metrics path" % (rel, ep.get("path", "/metrics")))
                    job = s["metadata"]["name"] if not d["spec"].get("jobLabel") else None
                    expect(job is None or JOB_RE.match(job),
                           "%s: job name %r matches AliyunBackupExporterDown's job=~\".*aliyun-backup.*\"" % (rel, job))
            elif kind == "PodMonitor":
                targets = [e for e in exporters if selects(d["spec"]["selector"], e["pod_labels"])]
                if not expect(targets, "%s: PodMonitor selects an exporter pod" % rel):
                    continue
                for ep in d["spec"]["podMetricsEndpoints"]:
                    for e in targets:
                        expect(ep.get("port") == e["port"]["name"],
                               "%s: podMetricsEndpoint port %r is the exporter's port name" % (rel, ep.get("port")))
                        expect(ep.get("path", "/metrics") == e["path"],
                               "%s: podMetricsEndpoint path %s is the exporter's metrics path" % (rel, ep.get("path", "/metrics")))
                job = "<namespace>/" + d["metadata"]["name"]
                expect(not d["spec"].get("jobLabel") and JOB_RE.match(job),
                       "%s: job name %r matches AliyunBackupExporterDown's job=~\".*aliyun-backup.*\"" % (rel, job))
            elif kind == "PrometheusRule":
                with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")) as f:
                    groups = yaml.safe_load(f)["groups"]
                expect(d["spec"].get("groups") == groups,
                       "%s: PrometheusRule groups equal deploy/prometheus/alerts.yml" % rel)
    expect(n_exporters >= 2, "found exporter containers in the standalone and sidecar manifests (%d)" % n_exporters)

    print("manifest checks: %d passed, %d failed" % (passes, len(problems)), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check the Kubernetes manifests against the real exporter binary.

  python3 deploy/kubernetes/check_manifests.py [--binary PATH]

Parses every YAML file under deploy/kubernetes/ and checks:
  * kustomization.yaml lists existing files, and every manifest of its folder
    (except *.example.yaml); when kustomize or kubectl is on PATH, every
    kustomization also builds (`kustomize build`, e.g. no file outside its
    folder, patches that apply);
  * each exporter container (image name containing aliyun-backup-exporter):
    - the port named `metrics` is the port the binary listens on (its
      --web.listen-address, else the default 9817);
    - credentials come from a Secret (secretKeyRef) through
      ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET;
    - requests, a memory limit and a restrictive securityContext are set;
    - liveness probes /healthz (and readiness, when present, /readyz) on `metrics`;
    - sharding: more than one replica needs a StatefulSet with
      `--shard.from-hostname` and `--shard.count` equal to `replicas`
      (otherwise every replica polls every instance, or shards go unwatched),
      and `podManagementPolicy: Parallel`; --shard.from-hostname needs a
      StatefulSet (only its pod names end in an ordinal);
    - the binary, started with the container's args (plus fake credentials,
      every endpoint (API, STS, ECS metadata) at http://127.0.0.1:9, ECS
      metadata disabled, an empty HOME and a free 127.0.0.1 listen address)
      is still running after 2 s (exit 2 = configuration error), answers 200
      on its liveness path, 200 or 503 on its readiness path and 200 on its
      metrics path, where aliyun_backup_exporter_shard_ordinal and
      aliyun_backup_exporter_total_shards are its shard. With
      --shard.from-hostname it is run once per replica i with
      HOSTNAME=<statefulset>-<i> (ordinal i of `replicas`), and once as the
      replica one past the end, which must refuse to start (exit 2). With
      --discovery.regions, discovery against the unreachable endpoint must
      fail (aliyun_backup_discovery_success 0) while the binary keeps serving;
    - it does not share a port with another container of the pod;
  * a workload's serviceAccountName is a ServiceAccount of its folder, and no
    service account token is mounted;
  * a StatefulSet's serviceName is a headless Service (clusterIP: None) of its
    folder that selects its pods;
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
import shutil
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
def gauge_values(body, name):
    """{labels string: value} of every sample of metric `name` in an exposition."""
    out = {}
    for line in body.splitlines():
        m = re.match(r"^%s(\{[^}]*\})?\s+(\S+)" % re.escape(name), line)
        if m:
            try:
                out[m.group(1) or ""] = float(m.group(2))
            except ValueError:
                pass
    return out


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stderr.close()


def start_exporter(binary, container, hostname=None):
    """Start the binary as the container would, every endpoint on loopback.

    Returns (process, port, printable command)."""
    args = [str(a) for a in container.get("args", []) or []]
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
    for var in ("ALIYUN_BACKUP_EXPORTER_ALIYUN_ENDPOINT", "ALIYUN_BACKUP_EXPORTER_ALIYUN_STS_ENDPOINT",
                "ALIYUN_BACKUP_EXPORTER_ALIYUN_METADATA_ENDPOINT"):
        if var in env:
            env[var] = FAKE_ENDPOINT
    if env.get("ALIYUN_BACKUP_EXPORTER_WEB_LISTEN_ADDRESS"):
        env["ALIYUN_BACKUP_EXPORTER_WEB_LISTEN_ADDRESS"] = "127.0.0.1:%d" % port
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = "test"
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "test"
    if hostname is not None:
        # What the kubelet sets in a pod: its name.
        env["HOSTNAME"] = hostname
    shown = "%s%s %s" % ("HOSTNAME=%s " % hostname if hostname is not None else "",
                         os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary, " ".join(run_args))
    proc = subprocess.Popen([binary] + run_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    return proc, port, shown


def run_exporter(binary, where, container, telemetry_path, probes, shard=(0, 1), discovery_regions=None,
                 hostname=None):
    """Start the binary as the container would and probe it.

    shard: the (ordinal, total) the exporter must report on /metrics."""
    proc, port, shown = start_exporter(binary, container, hostname)
    print("    run: %s" % shown, flush=True)
    if hostname is not None:
        where = "%s (HOSTNAME=%s)" % (where, hostname)
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
            # A failing liveness probe restarts the pod: it must be 200.
            want = (200,) if kind == "liveness" else (200, 503)
            expect(status in want, "%s: %s probe %s answers %s" % (where, kind, path, status),
                   "want %s" % " or ".join(map(str, want)))
        status, body = http_status(base + telemetry_path)
        if not expect(status == 200 and "aliyun_backup_" in body,
                      "%s: metrics path %s answers %s with aliyun_backup_ metrics" % (where, telemetry_path, status)):
            return
        ordinal = gauge_values(body, "aliyun_backup_exporter_shard_ordinal").get("")
        total = gauge_values(body, "aliyun_backup_exporter_total_shards").get("")
        expect((ordinal, total) == (float(shard[0]), float(shard[1])),
               "%s: aliyun_backup_exporter_shard_ordinal %s, aliyun_backup_exporter_total_shards %s" % (
                   where, ordinal, total), "want %d of %d" % shard)
        if discovery_regions:
            # Discovery against the unreachable endpoint fails (retries
            # included, a few seconds); the exporter keeps serving meanwhile.
            want = set(discovery_regions)
            found = {}
            end = time.time() + 15
            while time.time() < end:
                status, body = http_status(base + telemetry_path)
                found = {re.search(r'region_id="([^"]*)"', k).group(1): v
                         for k, v in gauge_values(body, "aliyun_backup_discovery_success").items()
                         if 'region_id="' in k}
                if want <= set(found):
                    break
                time.sleep(0.5)
            expect(want <= set(found) and all(found[r] == 0 for r in want),
                   "%s: discovery at the unreachable endpoint is reported failed "
                   "(aliyun_backup_discovery_success 0 for %s)" % (where, ", ".join(sorted(want))), repr(found))
            status, _ = http_status(base + "/healthz")
            expect(status == 200, "%s: /healthz still answers 200 after failed discovery rounds (%s)" % (where, status))
    finally:
        stop(proc)


def run_refused(binary, where, container, hostname, why):
    """The binary must refuse to start (exit 2) with this host name."""
    proc, _, shown = start_exporter(binary, container, hostname)
    print("    run: %s" % shown, flush=True)
    try:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        err = (proc.stderr.read() or "").strip().splitlines() if proc.returncode is not None else []
        expect(proc.returncode == 2, "%s (HOSTNAME=%s): the exporter refuses to start, exit %s (%s)%s" % (
            where, hostname, proc.returncode, why, ": " + err[-1] if err else ""), "want exit 2")
    finally:
        stop(proc)


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

    if c.get("command"):
        # The image's ENTRYPOINT is the binary; a command would replace it.
        fail("%s: sets command %r (the image's ENTRYPOINT is the exporter)" % (where, c["command"]))

    # Sharding: replicas, --shard.count and where the index comes from agree.
    replicas = int((wl.get("spec") or {}).get("replicas", 1)) if wl["kind"] in ("Deployment", "StatefulSet") else 1
    count = flag_value(args, "--shard.count") or env_value(c, "ALIYUN_BACKUP_EXPORTER_SHARD_COUNT") or "1"
    index = flag_value(args, "--shard.index") or env_value(c, "ALIYUN_BACKUP_EXPORTER_SHARD_INDEX") or "0"
    from_hostname = "--shard.from-hostname" in args or \
        str(env_value(c, "ALIYUN_BACKUP_EXPORTER_SHARD_FROM_HOSTNAME") or "").lower() in ("1", "true")
    try:
        count, index = int(count), int(index)
    except ValueError:
        fail("%s: --shard.count %r / --shard.index %r are not integers" % (where, count, index))
        count, index = 1, 0
    regions = flag_value(args, "--discovery.regions") or env_value(c, "ALIYUN_BACKUP_EXPORTER_DISCOVERY_REGIONS")
    if from_hostname:
        expect(wl["kind"] == "StatefulSet",
               "%s: --shard.from-hostname in a StatefulSet (only its pod names end in an ordinal)" % where,
               "is a %s" % wl["kind"])
    if replicas > 1 or count > 1:
        expect(wl["kind"] == "StatefulSet" and from_hostname,
               "%s: %d replicas share the instances through a StatefulSet with --shard.from-hostname" % (where, replicas),
               "without it every replica polls the same shard")
        expect(count == replicas, "%s: --shard.count=%d equals replicas: %d" % (where, count, replicas),
               "fewer shards than replicas: a pod refuses to start; more: shards nobody watches")
    if wl["kind"] == "StatefulSet":
        expect(wl["spec"].get("podManagementPolicy") == "Parallel",
               "%s: podManagementPolicy Parallel (a replica that is not ready does not hold back the others)" % where,
               "is %r" % wl["spec"].get("podManagementPolicy"))

    if binary:
        if from_hostname and wl["kind"] == "StatefulSet":
            name = wl["metadata"]["name"]
            for i in range(replicas):
                run_exporter(binary, where, c, telemetry_path, probes, shard=(i, count),
                             discovery_regions=regions.split(",") if regions else None,
                             hostname="%s-%d" % (name, i))
            run_refused(binary, where, c, "%s-%d" % (name, replicas),
                        "a replica added without raising --shard.count")
        else:
            run_exporter(binary, where, c, telemetry_path, probes,
                         shard=(0 if from_hostname else index, count),
                         discovery_regions=regions.split(",") if regions else None)
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


def check_kustomize_build():
    """Build every kustomization with kustomize (or kubectl kustomize) when one is installed."""
    if shutil.which("kustomize"):
        tool = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        tool = ["kubectl", "kustomize"]
    else:
        print("  skip  kustomize build: neither kustomize nor kubectl on PATH", flush=True)
        return
    for kfile in sorted(glob.glob(os.path.join(HERE, "**", "kustomization.yaml"), recursive=True)):
        d = os.path.dirname(kfile)
        rel = os.path.relpath(d, ROOT)
        try:
            r = subprocess.run(tool + [d], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            fail("%s %s timed out" % (" ".join(tool), rel))
            continue
        if r.returncode != 0:
            err = (r.stderr or "").strip().splitlines()
            fail("%s %s: %s" % (" ".join(tool), rel, err[-1] if err else "exit %d" % r.returncode))
            continue
        kinds = sorted("%s/%s" % (doc.get("kind"), doc.get("metadata", {}).get("name"))
                       for doc in yaml.safe_load_all(r.stdout) if doc)
        ok("%s %s builds: %s" % (" ".join(tool), rel, ", ".join(kinds)))


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
    check_kustomize_build()

    # Per folder (one kustomization each): workloads, then what points at them.
    folders = sorted({os.path.dirname(rel) for rel, _ in docs})
    n_exporters = 0
    n_statefulsets = 0
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
        accounts = {d["metadata"]["name"]: d for _, d in fdocs if d.get("kind") == "ServiceAccount"}
        for rel, d, labels, spec in workloads:
            what = "%s: %s %s" % (rel, d["kind"], d["metadata"]["name"])
            sa = spec.get("serviceAccountName")
            if sa:
                expect(sa in accounts, "%s: serviceAccountName %s is a ServiceAccount of %s/" % (what, sa, folder))
            token = spec.get("automountServiceAccountToken")
            if token is None and sa in accounts:
                token = accounts[sa].get("automountServiceAccountToken")
            expect(token is False, "%s: no service account token is mounted (automountServiceAccountToken: false)" % what)
            if d["kind"] == "StatefulSet":
                name = d["spec"].get("serviceName")
                svc = [s for _, s in fdocs if s.get("kind") == "Service" and s["metadata"]["name"] == name]
                if expect(svc, "%s: serviceName %r is a Service of %s/" % (what, name, folder)):
                    expect(svc[0]["spec"].get("clusterIP") == "None",
                           "%s: its Service %s is headless (clusterIP: None)" % (what, name))
                    expect(selects({"matchLabels": svc[0]["spec"].get("selector")}, labels),
                           "%s: its Service %s selects the StatefulSet's pods" % (what, name))
                n_statefulsets += 1
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
    expect(n_exporters >= 3 and n_statefulsets >= 1,
           "found exporter containers in the standalone, sidecar and sharded manifests (%d, %d StatefulSet)"
           % (n_exporters, n_statefulsets))

    print("manifest checks: %d passed, %d failed" % (passes, len(problems)), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

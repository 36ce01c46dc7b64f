#!/usr/bin/env python3
"""Checks for deploy/e2e/prometheus_e2e.sh, through HTTP only (stdlib).

  check_e2e.py exporter   --exporter URL --deadline EPOCH
                          [--ca FILE --cert FILE --key FILE --user NAME --password TEXT]
  check_e2e.py prometheus --prometheus URL --deadline EPOCH [--dashboard FILE]

`exporter`: waits until the exporter is ready (/readyz 200) and checks its
/metrics; with --ca (an https:// exporter behind --web.config.file), through
TLS with the client certificate and basic auth, after checking that plain
HTTP, a client without a certificate and one without the password get
nothing. The Prometheus checks also make sure the target is scraped over
https. `prometheus`: waits until Prometheus has scraped the exporter, then
waits until discovery has found the instance the demo adds after about a
minute (r-demo-new), checks facts of the demo's fleet (two regions, an
instance in Creating that is listed but not polled, discovery working), that
every query of the dashboard returns data (with its product variable at All and
at redis, one of the demo's four products) and that the demo's instances raise
exactly the expected alerts (pending or firing), and nothing else.
Exit status 0 when every check passed.
"""
import argparse
import base64
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in deploy/
sys.path.insert(0, os.path.dirname(HERE))
import check_dashboard  # noqa: E402  (deploy/check_dashboard.py)

JOB = "aliyun-backup-exporter"
# The demo (src/demo.rs): one account, "default", discovering two regions.
ACCOUNT = "default"
REGIONS = ["cn-hangzhou", "cn-shanghai"]
# Listed by DescribeInstances in status Creating: info only, never polled.
CREATING = "r-demo-creating"
# Added to the fake API about 60 s after the start; discovery (every 20 s in
# demo mode) picks it up.
LATE = "r-demo-new"
LATE_BUDGET = 120  # seconds to wait for it
# The demo's polled instances and the alerts each must raise (pending or
# firing). The thresholds come from each instance's backup policy
# (aliyun_backup_expected_max_age_seconds): daily 02:00Z-03:00Z unless said.
EXPECTED_ALERTS = {
    "r-demo-healthy": set(),
    "r-demo-cluster": set(),
    "r-demo-throttled": set(),
    # Newest attempt failed 2h ago, previous success about 26h ago (< 27h).
    "r-demo-failed": {"AliyunBackupLastAttemptFailed"},
    # Newest success 3d2h ago; DescribeBackupPolicy refused: --backup.max-age 36h.
    "r-demo-stale": {"AliyunBackupOverdue"},
    "r-demo-all-failed": {"AliyunBackupNoSuccessInWindow", "AliyunBackupLastAttemptFailed"},
    "r-demo-released": {"AliyunBackupPollFailing"},
    # Monday+Thursday: 3 days old is within its 4d 3h.
    "r-demo-twice-weekly": set(),
    # Daily: 30h old, more than its 27h.
    "r-demo-daily-missed": {"AliyunBackupOverdue"},
    # Created an hour ago, no backup yet: younger than its expected max age.
    "r-demo-young": set(),
    # Cloud-native cluster: the newest backup failed on one shard.
    "r-demo-native": {"AliyunBackupLastAttemptFailed"},
    LATE: set(),
    # The other products (the fake's product samples): daily, a healthy one
    # and one whose newest backup failed 2h ago (previous success about 26h
    # ago, < 27h) each; MongoDB's failing one is a sharded cluster whose
    # second shard failed.
    "rm-demo-healthy": set(),
    "rm-demo-failed": {"AliyunBackupLastAttemptFailed"},
    "dds-demo-replica": set(),
    "dds-demo-sharded": {"AliyunBackupLastAttemptFailed"},
    "pc-demo-healthy": set(),
    "pc-demo-failed": {"AliyunBackupLastAttemptFailed"},
}
# The product of each instance (redis unless listed).
PRODUCT_OF = {
    "rm-demo-healthy": "rds", "rm-demo-failed": "rds",
    "dds-demo-replica": "mongodb", "dds-demo-sharded": "mongodb",
    "pc-demo-healthy": "polardb", "pc-demo-failed": "polardb",
}
PRODUCTS = ["redis", "rds", "mongodb", "polardb"]
# Per-node alerts that must concern only some nodes of their instance.
EXPECTED_NODES = {
    ("AliyunBackupLastAttemptFailed", "r-demo-native"): {"r-demo-native-db-1"},
    ("AliyunBackupLastAttemptFailed", "dds-demo-sharded"): {"d-demo-shard-1"},
}
REGION_OF = {
    "r-demo-healthy": "cn-hangzhou", "r-demo-cluster": "cn-hangzhou", "r-demo-throttled": "cn-hangzhou",
    "r-demo-released": "cn-hangzhou", "r-demo-twice-weekly": "cn-hangzhou", "r-demo-daily-missed": "cn-hangzhou",
    "r-demo-young": "cn-hangzhou", "r-demo-native": "cn-hangzhou", LATE: "cn-hangzhou",
    "r-demo-failed": "cn-shanghai", "r-demo-stale": "cn-shanghai", "r-demo-all-failed": "cn-shanghai",
    "rm-demo-healthy": "cn-hangzhou", "rm-demo-failed": "cn-hangzhou",
    "dds-demo-replica": "cn-hangzhou", "dds-demo-sharded": "cn-hangzhou",
    "pc-demo-healthy": "cn-hangzhou", "pc-demo-failed": "cn-hangzhou",
}
ALL_ALERTS = {"AliyunBackupOverdue", "AliyunBackupNoSuccessInWindow", "AliyunBackupLastAttemptFailed",
              "AliyunBackupPollFailing", "AliyunBackupPollStale", "AliyunBackupExporterDown",
              "AliyunBackupApiThrottled", "AliyunBackupDiscoveryFailing", "AliyunBackupConfigReloadFailed"}
# Alerts the demo must never raise.
QUIET_ALERTS = ["AliyunBackupExporterDown", "AliyunBackupApiThrottled", "AliyunBackupDiscoveryFailing",
                "AliyunBackupConfigReloadFailed", "AliyunBackupPollStale"]
STABLE_FOR = 5.0  # seconds the alert set must stay as expected

failures = []
passes = 0


def ok(msg):
    global passes
    passes += 1
    print("  ok    %s" % msg, flush=True)


def fail(msg):
    failures.append(msg)
    print("  FAIL  %s" % msg, flush=True)


# How to reach the exporter (--ca ... --password): a TLS context with the
# client certificate and the Authorization header, or None for plain HTTP.
EXPORTER_TLS = {"ca": None, "cert": None, "key": None, "auth": None}


def tls_context(client_cert=True):
    ctx = ssl.create_default_context(cafile=EXPORTER_TLS["ca"])
    if client_cert:
        ctx.load_cert_chain(EXPORTER_TLS["cert"], EXPORTER_TLS["key"])
    return ctx


def exporter_get(url, client_cert=True, password=True):
    """http_get for the exporter, with its TLS client certificate and basic
    auth when --ca is given."""
    if EXPORTER_TLS["ca"] is None or not url.startswith("https:"):
        return http_get(url)
    req = urllib.request.Request(url)
    if password and EXPORTER_TLS["auth"]:
        req.add_header("Authorization", EXPORTER_TLS["auth"])
    return http_get(req, context=tls_context(client_cert))


def http_get(url, timeout=5, context=None):
    """(status, headers, body); status 0 when the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return 0, {}, ""


class Deadline:
    def __init__(self, epoch):
        self.epoch = epoch

    def left(self):
        return self.epoch - time.time()

    def wait_for(self, what, probe, interval=0.5, budget=None):
        """Call probe() until it returns a truthy value; None on timeout."""
        end = self.epoch if budget is None else min(self.epoch, time.time() + budget)
        last = None
        while True:
            last = probe()
            if last:
                return last
            if time.time() >= end:
                fail("timed out waiting for %s" % what)
                return None
            time.sleep(interval)


# ----------------------------------------------------------------- exporter
def check_exporter(base, dl):
    print("exporter %s" % base, flush=True)
    st = dl.wait_for("the exporter's /readyz to answer 200 (every instance polled once)",
                     lambda: exporter_get(base + "/readyz")[0] == 200, budget=60)
    if not st:
        return
    ok("/readyz answers 200")
    status, _, _ = exporter_get(base + "/healthz")
    (ok if status == 200 else fail)("/healthz answers %s" % status)
    if EXPORTER_TLS["ca"] is not None:
        check_exporter_refusals(base)
    status, headers, body = exporter_get(base + "/metrics")
    if status != 200:
        fail("/metrics answers %s" % status)
        return
    ctype = headers.get("Content-Type", "")
    (ok if ctype.startswith("text/plain; version=0.0.4") else fail)("/metrics Content-Type is %r" % ctype)
    names = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}
    missing = sorted(n for n in check_dashboard.CONTRACT if n not in names)
    if missing:
        fail("/metrics lacks contract metrics: %s" % ", ".join(missing))
    else:
        ok("/metrics has all %d contract metric names" % len(check_dashboard.CONTRACT))
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
        problems = (lint.stdout + lint.stderr).strip()
        (ok if lint.returncode == 0 else fail)("promtool check metrics%s" % (": " + problems if problems else ": clean"))


def check_exporter_refusals(base):
    """--web.config.file: TLS, RequireAndVerifyClientCert and basic auth."""
    plain = "http://" + base.split("://", 1)[1]
    status, _, body = http_get(plain + "/metrics")
    (ok if status == 400 and "HTTPS" in body and "aliyun_backup" not in body else fail)(
        "plain HTTP to the TLS port gets 400 %r (got %s)" % (body.strip(), status))
    status, _, _ = exporter_get(base + "/metrics", client_cert=False)
    (ok if status == 0 else fail)("TLS without a client certificate is refused in the handshake (got %s)" % status)
    status, headers, body = exporter_get(base + "/metrics", password=False)
    (ok if status == 401 and headers.get("WWW-Authenticate") == "Basic" and "aliyun_backup" not in body
     else fail)("a client certificate without the password gets 401 with WWW-Authenticate: Basic (got %s)" % status)
    status, _, _ = exporter_get(base + "/", password=False)
    (ok if status == 401 else fail)("the landing page needs the password too (got %s)" % status)
    for probe in ("/healthz", "/readyz"):
        status, _, body = exporter_get(base + probe, password=False)
        (ok if status == 200 and "r-demo" not in body else fail)(
            "%s answers the kubelet without a password and names no instance (got %s)" % (probe, status))


# --------------------------------------------------------------- prometheus
def query(base, expr):
    """Instant query: (result list, error string)."""
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, _, body = http_get(url, timeout=10)
    try:
        doc = json.loads(body)
    except ValueError:
        return None, "HTTP %s: %s" % (status, body[:200])
    if doc.get("status") != "success":
        return None, "%s: %s" % (doc.get("errorType"), doc.get("error"))
    data = doc["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}], None
    return data["result"], None


def scalar(base, expr):
    res, _ = query(base, expr)
    if res:
        try:
            return float(res[0]["value"][1])
        except (KeyError, ValueError, IndexError):
            return None
    return None


def active_alerts(base):
    status, _, body = http_get(base + "/api/v1/alerts")
    if status != 200:
        return None
    alerts = json.loads(body)["data"]["alerts"]
    return [a for a in alerts if a.get("state") in ("pending", "firing")]


def alert_key_set(alerts):
    return sorted({(a["labels"].get("alertname"), a["labels"].get("instance_id", ""), a["state"]) for a in alerts})


def check_prometheus(base, dl, dashboard_path):
    print("prometheus %s" % base, flush=True)
    if not dl.wait_for("Prometheus to be ready", lambda: http_get(base + "/-/ready")[0] == 200, budget=60):
        return
    ok("Prometheus is ready")

    up = dl.wait_for("up{job=%r} == 1" % JOB,
                     lambda: scalar(base, 'up{job="%s"}' % JOB) == 1.0, budget=30)
    if not up:
        return
    ok('the exporter target is up (job="%s")' % JOB)
    status, _, body = http_get(base + "/api/v1/targets?state=active")
    targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
    urls = [t.get("scrapeUrl", "") for t in targets if t.get("labels", {}).get("job") == JOB]
    healthy = [t.get("health") for t in targets if t.get("labels", {}).get("job") == JOB]
    (ok if urls and all(u.startswith("https://") for u in urls) and healthy == ["up"] else fail)(
        "Prometheus scrapes the exporter over TLS with its client certificate and password: %s (%s)"
        % (", ".join(urls) or "no target", ", ".join(healthy)))
    n = len(EXPECTED_ALERTS)
    if not dl.wait_for("%d instances in aliyun_backup_poll_success" % (n - 1),
                       lambda: (scalar(base, "count(aliyun_backup_poll_success)") or 0) >= n - 1, budget=30):
        return
    ok("aliyun_backup_poll_success has the %d instances of the start" % (n - 1))
    # The instance the demo creates after a minute: found by discovery, polled.
    if not dl.wait_for("discovery to find %s (added about 60 s after the start) and its first poll" % LATE,
                       lambda: scalar(base, 'aliyun_backup_poll_success{instance_id="%s"}' % LATE) == 1.0
                       and scalar(base, "count(aliyun_backup_poll_success)") == n,
                       interval=1, budget=LATE_BUDGET):
        return
    ok("discovery found %s and it was polled: aliyun_backup_poll_success has %d instances" % (LATE, n))
    # rate() needs a few samples in its window.
    if not dl.wait_for("5 scrapes in Prometheus",
                       lambda: (scalar(base, 'count_over_time(up{job="%s"}[1m])' % JOB) or 0) >= 5, budget=30):
        return
    ok("at least 5 scrapes stored")

    # Rules loaded and evaluated without error.
    def rules_healthy():
        status, _, body = http_get(base + "/api/v1/rules?type=alert")
        if status != 200:
            return None
        rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
        names = {r["name"] for r in rules}
        if names != ALL_ALERTS:
            return None
        if any(r.get("health") != "ok" for r in rules):
            return None
        return rules
    rules = dl.wait_for("the %d alert rules to be loaded and evaluated without error" % len(ALL_ALERTS),
                        rules_healthy, budget=20)
    if not rules:
        status, _, body = http_get(base + "/api/v1/rules?type=alert")
        print("    rules: %s" % body[:2000])
        return
    ok("alerts.yml loaded: %s" % ", ".join(sorted(r["name"] for r in rules)))

    # Rates and latency quantiles need API calls inside their window, and the
    # demo's throttled instance only sees its first throttled call after a
    # couple of poll rounds (--poll.interval is 15s in demo mode).
    if not dl.wait_for("API calls within the last minute, throttled ones included",
                       lambda: (scalar(base, "sum(increase(aliyun_backup_api_requests_total[1m]))") or 0) > 0
                       and (scalar(base, 'count(aliyun_backup_api_requests_total{code=~"Throttling.*"})') or 0) > 0,
                       interval=1, budget=90):
        return
    ok("the exporter made API calls in the last minute, some of them throttled")

    # A few facts of the demo that the alerts and dashboard rely on.
    demo_facts = []
    for product in PRODUCTS:
        ids = sorted(i for i in EXPECTED_ALERTS if PRODUCT_OF.get(i, "redis") == product)
        demo_facts += [
            ('count(aliyun_backup_poll_success{product="%s"})' % product, len(ids),
             "product=%s: %s" % (product, ", ".join(ids))),
        ]
    for region in REGIONS:
        ids = sorted(i for i, r in REGION_OF.items() if r == region)
        demo_facts += [
            ('count(aliyun_backup_poll_success{region_id="%s", instance_id=~"%s"})' % (region, "|".join(ids)), len(ids),
             "%s: %s" % (region, ", ".join(ids))),
            ('min(aliyun_backup_discovery_success{account="%s", region_id="%s"})' % (ACCOUNT, region), 1,
             "discovery of every product works in %s (aliyun_backup_discovery_success 1)" % region),
            ('count(aliyun_backup_discovery_success{account="%s", region_id="%s"})' % (ACCOUNT, region), len(PRODUCTS),
             "discovery runs for the %d products in %s" % (len(PRODUCTS), region)),
            ('max(time() - aliyun_backup_discovery_timestamp_seconds{account="%s", region_id="%s"}) < 60' % (ACCOUNT, region),
             None, "the last successful discovery in %s is less than a minute old" % region),
        ]
    demo_facts += [
        ('count(aliyun_backup_discovery_success)', len(REGIONS) * len(PRODUCTS),
         "aliyun_backup_discovery_success only for the demo's regions and products (no region_id=\"all\": the regions are listed)"),
        ('count(aliyun_backup_last_success_age_seconds{instance_id="dds-demo-sharded"})', 2,
         "dds-demo-sharded has one last-success series per shard node (2)"),
        ('sum(aliyun_backup_targets{account="%s"})' % ACCOUNT, n,
         "aliyun_backup_targets counts the %d polled instances (not the one in Creating)" % n),
        ('aliyun_backup_instance_info{instance_id="%s", status="Creating", account="%s"}' % (CREATING, ACCOUNT), 1,
         "%s has aliyun_backup_instance_info with status Creating" % CREATING),
        ('count({instance_id="%s", __name__!="aliyun_backup_instance_info", __name__!="aliyun_backup_instance_created_timestamp_seconds"}) or vector(0)' % CREATING, 0,
         "%s has no poll_success or backup series (not polled)" % CREATING),
        ('aliyun_backup_instance_info{instance_id="%s", status="Normal"}' % LATE, 1,
         "%s has aliyun_backup_instance_info with status Normal" % LATE),
        ('aliyun_backup_exporter_shard_ordinal', 0, "aliyun_backup_exporter_shard_ordinal 0"),
        ('aliyun_backup_exporter_total_shards', 1, "aliyun_backup_exporter_total_shards 1"),
        ('aliyun_backup_exporter_config_last_reload_successful', 1,
         "aliyun_backup_exporter_config_last_reload_successful 1"),
        ('count(aliyun_backup_last_success_age_seconds{instance_id="r-demo-cluster"})', 2,
         "r-demo-cluster has one last-success series per node (2)"),
        ('count(aliyun_backup_backups{instance_id="r-demo-released"}) or vector(0)', 0,
         "r-demo-released has no backup series"),
        ('aliyun_backup_poll_success{instance_id="r-demo-released"}', 0,
         "r-demo-released polls fail (aliyun_backup_poll_success 0)"),
        ('count(aliyun_backup_last_success_timestamp_seconds{instance_id="r-demo-all-failed"}) or vector(0)', 0,
         "r-demo-all-failed has no last-success series"),
        ('aliyun_backup_poll_success{instance_id="r-demo-throttled"}', 1,
         "r-demo-throttled polls succeed despite throttled calls (retried)"),
    ]
    for expr, want, what in demo_facts:
        got = scalar(base, expr)
        if (want is None and got) or (want is not None and got == want):
            ok(what)
        else:
            fail("%s: %s gave %r, want %r" % (what, expr, got, want if want is not None else "> 0"))

    # Every dashboard query returns data.
    with open(dashboard_path) as f:
        dash = json.load(f)
    for name, q in check_dashboard.iter_variable_queries(dash):
        m = re.match(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*$", q)
        selector, label = check_dashboard.substitute(m.group(1)), m.group(2)
        url = base + "/api/v1/label/%s/values?%s" % (label, urllib.parse.urlencode({"match[]": selector}))
        status, _, body = http_get(url)
        values = json.loads(body).get("data") if status == 200 else None
        want = {"account": [ACCOUNT], "region_id": REGIONS}.get(label, sorted(EXPECTED_ALERTS))
        if values is not None and sorted(values) == sorted(want):
            ok("variable $%s: %s -> %s" % (name, q, ", ".join(values)))
        else:
            fail("variable $%s: %s -> %r, want %r" % (name, q, values, want))
    # With the product variable at All, then at redis (one of the demo's
    # four products): every panel has data either way.
    queries = [(where, check_dashboard.substitute(expr)) for where, expr, _ in check_dashboard.iter_queries(dash)]
    queries += [(where + " (product=redis)", check_dashboard.substitute(expr, {"product": "redis"}))
                for where, expr, _ in check_dashboard.iter_queries(dash)]
    pending = dict(queries)
    results = {}
    errors = {}

    def all_have_data():
        for where, expr in list(pending.items()):
            res, err = query(base, expr)
            if err:
                errors[where] = err
            elif res:
                results[where] = res
                del pending[where]
        return not pending
    dl.wait_for("every dashboard query to return data", all_have_data, interval=1, budget=60)
    for where, expr in queries:
        if where in results:
            res = results[where]
            nan = sum(1 for r in res if r["value"][1] in ("NaN", "+Inf", "-Inf"))
            if nan:
                fail("%s: %d of %d series are NaN/Inf: %s" % (where, nan, len(res), expr))
            else:
                ok("%s: %d series" % (where, len(res)))
        else:
            fail("%s returned no data: %s%s" % (where, expr, " (error: %s)" % errors[where] if where in errors else ""))

    # Alerts: exactly the expected ones are pending or firing, stably.
    expected = sorted((a, i) for i, names in EXPECTED_ALERTS.items() for a in names)
    got_keys = []
    got_alerts = []
    stable_since = [None]

    def alerts_as_expected():
        alerts = active_alerts(base)
        if alerts is None:
            return False
        got_alerts[:] = alerts
        got_keys[:] = alert_key_set(alerts)
        if sorted({(a, i) for a, i, _ in got_keys}) != expected:
            stable_since[0] = None
            return False
        if stable_since[0] is None:
            stable_since[0] = time.time()
        return time.time() - stable_since[0] >= STABLE_FOR
    dl.wait_for("the expected alerts (stable for %gs)" % STABLE_FOR, alerts_as_expected, interval=0.5, budget=60)
    got = {(a, i) for a, i, _ in got_keys}
    print("    active alerts:", flush=True)
    for a, i, state in got_keys:
        print("      %-32s %-20s %s" % (a, i or "-", state), flush=True)
    for inst, names in sorted(EXPECTED_ALERTS.items()):
        have = {a for a, i in got if i == inst}
        if have == names:
            ok("%s raises %s" % (inst, ", ".join(sorted(names)) if names else "no alert"))
        else:
            fail("%s raises %s, want %s" % (inst, sorted(have) or "no alert", sorted(names) or "no alert"))
    for a, i in sorted(got):
        if i not in EXPECTED_ALERTS:
            fail("unexpected alert %s (instance_id=%r)" % (a, i))
    for (a, inst), nodes in sorted(EXPECTED_NODES.items()):
        have = {x["labels"].get("node_id", "") for x in got_alerts
                if x["labels"].get("alertname") == a and x["labels"].get("instance_id") == inst}
        if have == nodes:
            ok("%s of %s concerns node(s) %s only" % (a, inst, ", ".join(sorted(nodes))))
        else:
            fail("%s of %s concerns node(s) %s, want %s" % (a, inst, sorted(have) or "none", sorted(nodes)))
    share = scalar(base, 'max(sum without (action, code, region_id) (rate(aliyun_backup_api_requests_total{code=~"Throttling.*"}[15m]))'
                         ' / sum without (action, code, region_id) (rate(aliyun_backup_api_requests_total[15m])))')
    print("    throttled share of API calls (AliyunBackupApiThrottled's expression): %s (fires above 0.5 for 30m)"
          % ("%.3f" % share if share is not None else "none"), flush=True)
    for a in QUIET_ALERTS:
        (fail if any(x == a for x, _ in got) else ok)("%s is not active" % a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["exporter", "prometheus"])
    ap.add_argument("--exporter")
    ap.add_argument("--prometheus")
    ap.add_argument("--dashboard", default=check_dashboard.DEFAULT_DASHBOARD)
    ap.add_argument("--deadline", type=float, required=True)
    ap.add_argument("--ca", help="CA of the exporter's TLS certificate")
    ap.add_argument("--cert", help="client certificate for the exporter")
    ap.add_argument("--key", help="its key")
    ap.add_argument("--user", help="basic auth user for the exporter")
    ap.add_argument("--password", help="basic auth password for the exporter")
    args = ap.parse_args()
    EXPORTER_TLS.update(ca=args.ca, cert=args.cert, key=args.key)
    if args.user is not None:
        token = base64.b64encode(("%s:%s" % (args.user, args.password or "")).encode()).decode()
        EXPORTER_TLS["auth"] = "Basic " + token
    dl = Deadline(args.deadline)
    if args.mode == "exporter":
        check_exporter(args.exporter.rstrip("/"), dl)
    else:
        check_prometheus(args.prometheus.rstrip("/"), dl, args.dashboard)
    print("e2e %s checks: %d passed, %d failed" % (args.mode, passes, len(failures)), flush=True)
    return 1 if failures or passes == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

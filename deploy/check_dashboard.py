#!/usr/bin/env python3
"""Static checks of the Grafana dashboard (and the metric names of the alerts).

Usage: deploy/check_dashboard.py [dashboards/aliyun-backup.json]

Checks that the dashboard is valid JSON, uses a `datasource` template variable
of type prometheus everywhere, has the `product` custom variable (redis, rds,
mongodb, polardb; multi-value with All) and the `account`/`region_id`/
`instance_id` query variables, and that every PromQL query (panels and
variables) and every alert expression only uses metrics of the metrics
contract (design.md) or recording rules shipped in deploy/prometheus/. Every
selector of a metric must be filtered by each variable whose label the metric
carries (per-instance metrics by product, region_id and instance_id;
discovery and target metrics by account, product and region_id; the API
metrics, which have no product label, by account and region_id), so that the
filters apply to every panel where they can.

Also imported by deploy/e2e/check_e2e.py for `iter_queries` and `substitute`.
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DASHBOARD = os.path.join(ROOT, "dashboards", "aliyun-backup.json")
RULES_DIR = os.path.join(ROOT, "deploy", "prometheus")

# The metrics contract of design.md: name -> the labels it carries that are
# also dashboard variables (account, region_id, instance_id). A query must
# filter each such label by its variable.
INSTANCE = ("product", "region_id", "instance_id")
ACCOUNT_REGION = ("account", "region_id")
ACCOUNT_PRODUCT_REGION = ("account", "product", "region_id")
CONTRACT = {
    "aliyun_backup_last_success_timestamp_seconds": INSTANCE,
    "aliyun_backup_last_success_age_seconds": INSTANCE,
    "aliyun_backup_last_success_size_bytes": INSTANCE,
    "aliyun_backup_last_success_duration_seconds": INSTANCE,
    "aliyun_backup_last_success_info": INSTANCE,
    "aliyun_backup_last_attempt_timestamp_seconds": INSTANCE,
    "aliyun_backup_last_attempt_success": INSTANCE,
    "aliyun_backup_backups": INSTANCE,
    "aliyun_backup_poll_success": INSTANCE,
    "aliyun_backup_poll_success_timestamp_seconds": INSTANCE,
    "aliyun_backup_instance_info": ("account",) + INSTANCE,
    "aliyun_backup_instance_created_timestamp_seconds": INSTANCE,
    "aliyun_backup_policy_info": INSTANCE,
    "aliyun_backup_policy_max_interval_seconds": INSTANCE,
    "aliyun_backup_policy_retention_seconds": INSTANCE,
    "aliyun_backup_policy_log_backup_enabled": INSTANCE,
    "aliyun_backup_expected_max_age_seconds": INSTANCE,
    "aliyun_backup_discovery_success": ACCOUNT_PRODUCT_REGION,
    "aliyun_backup_discovery_timestamp_seconds": ACCOUNT_PRODUCT_REGION,
    "aliyun_backup_targets": ACCOUNT_PRODUCT_REGION,
    "aliyun_backup_api_requests_total": ACCOUNT_REGION,
    "aliyun_backup_api_request_duration_seconds_bucket": ACCOUNT_REGION,
    "aliyun_backup_api_request_duration_seconds_sum": ACCOUNT_REGION,
    "aliyun_backup_api_request_duration_seconds_count": ACCOUNT_REGION,
    "aliyun_backup_poll_cycle_duration_seconds": (),
    "aliyun_backup_poll_interval_seconds": (),
    "aliyun_backup_exporter_build_info": (),
    "aliyun_backup_exporter_shard_ordinal": (),
    "aliyun_backup_exporter_total_shards": (),
    "aliyun_backup_exporter_config_last_reload_successful": (),
    "aliyun_backup_exporter_config_last_reload_success_timestamp_seconds": (),
}
VARIABLES = ("product", "account", "region_id", "instance_id")
# The product variable's values: the `product` label of each product.
PRODUCTS = ["redis", "rds", "mongodb", "polardb"]
# Where the account variable's values may come from.
ACCOUNT_SOURCES = ("aliyun_backup_targets", "aliyun_backup_instance_info")


def filters(matchers, var):
    """True when label matchers filter `var` by its variable: var=~"$var", or
    var=~"$var|<literal>|..." (e.g. region_id=~"$region_id|all" for the
    account-wide DescribeRegions calls, region_id="all")."""
    return re.search(r'(?<![\w])%s=~"\$(\{%s\}|%s)(\|[\w.:-]+)*"' % (var, var, var), matchers) is not None


# Series Prometheus itself makes; allowed in alert rules only.
PROMETHEUS_SERIES = {"up"}

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2"}
IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)")

# Values substituted for Grafana variables when a query is sent to Prometheus.
SUBSTITUTIONS = {
    "product": ".*",
    "account": ".*",
    "region_id": ".*",
    "instance_id": ".*",
    "datasource": "prometheus",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


def substitute(expr, overrides=None):
    """Replace $var, ${var}, ${var:fmt} and [[var]] by SUBSTITUTIONS (or
    `overrides`, e.g. {"product": "redis"}). `$1`, `${1}` (label_replace
    references to regex groups) are not variables, neither for Grafana nor
    here: left as they are."""
    values = dict(SUBSTITUTIONS, **(overrides or {}))

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise ValueError("unknown template variable %r in %r" % (name, expr))
        return values[name]
    var = r"[A-Za-z_]\w*"
    return re.sub(r"\$\{(%s)(?::\w+)?\}|\[\[(%s)\]\]|\$(%s)" % (var, var, var), repl, expr)


def _strip(expr):
    """Remove what cannot hold a metric name: strings, matchers, ranges,
    grouping label lists."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    return s


def metric_names(expr):
    """Metric names a PromQL expression selects."""
    s = _strip(expr)
    names = set()
    for m in IDENT.finditer(s):
        word = m.group(1)
        rest = s[m.end():]
        if re.match(r"\s*\(", rest):        # function or aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def selectors(expr, name):
    """Label-matcher strings of every selector of metric `name` ('' if none)."""
    out = []
    for m in re.finditer(r"(?<![\w:])" + re.escape(name) + r"(?![\w:])(\s*\{([^}]*)\})?", expr):
        out.append(m.group(2) or "")
    return out


def iter_panels(panels):
    for p in panels:
        yield p
        for sub in p.get("panels", []) or []:
            yield sub


def iter_queries(dash):
    """(where, expr) for every panel target."""
    for p in iter_panels(dash.get("panels", [])):
        for t in p.get("targets", []) or []:
            yield ("panel %r target %s" % (p.get("title"), t.get("refId")), t.get("expr", ""), t)


def iter_variable_queries(dash):
    """(name, query) for every query variable."""
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            if isinstance(q, dict):
                q = q.get("query", "")
            yield v["name"], q


def rules():
    """(file, rule) for every rule of the rule files (not their tests)."""
    for fn in sorted(os.listdir(RULES_DIR)):
        if fn.endswith((".yml", ".yaml")) and not fn.endswith("_test.yml"):
            with open(os.path.join(RULES_DIR, fn)) as f:
                doc = yaml.safe_load(f) or {}
            for g in doc.get("groups", []):
                for r in g.get("rules", []):
                    yield fn, r


def recording_rules():
    return {r["record"] for _, r in rules() if "record" in r}


def alert_exprs():
    for fn, r in rules():
        yield fn, r.get("alert") or r.get("record"), r["expr"]


def check(path):
    errors = []
    checked = 0
    with open(path) as f:
        try:
            dash = json.load(f)
        except ValueError as e:
            return ["%s: invalid JSON: %s" % (path, e)], 0
    allowed = set(CONTRACT) | recording_rules()

    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        errors.append("schemaVersion must be >= 36, is %r" % dash.get("schemaVersion"))
    for key in ("uid", "title"):
        if not dash.get(key):
            errors.append("dashboard has no %s" % key)

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("template variable 'datasource' of type datasource/prometheus missing")
    for name in ("region_id", "instance_id"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            errors.append("query variable %r missing" % name)
            continue
        if not (v.get("multi") and v.get("includeAll")):
            errors.append("variable %r must be multi-value with All" % name)
        q = dict(iter_variable_queries(dash)).get(name, "")
        if not re.match(r"label_values\(\s*aliyun_backup_poll_success\b.*,\s*%s\s*\)$" % name, q):
            errors.append("variable %r must use label_values(aliyun_backup_poll_success, %s), has %r" % (name, name, q))
        if v.get("datasource", {}).get("uid") != "${datasource}":
            errors.append("variable %r does not use ${datasource}" % name)
    v = variables.get("product")
    if not v or v.get("type") != "custom":
        errors.append("custom variable 'product' missing")
    else:
        values = [x.strip() for x in str(v.get("query", "")).split(",")]
        if values != PRODUCTS:
            errors.append("variable 'product' must list %s, lists %r" % (",".join(PRODUCTS), values))
        if not (v.get("multi") and v.get("includeAll") and v.get("allValue") == ".*"):
            errors.append("variable 'product' must be multi-value with All (allValue .*)")
        listed = [o.get("value") for o in v.get("options", [])]
        if listed != ["$__all"] + PRODUCTS:
            errors.append("variable 'product' options must be All then %s, are %r" % (", ".join(PRODUCTS), listed))
    v = variables.get("account")
    if not v or v.get("type") != "query":
        errors.append("query variable 'account' missing")
    else:
        if not (v.get("multi") and v.get("includeAll") and v.get("allValue") == ".*"):
            errors.append("variable 'account' must be multi-value with All (allValue .*)")
        q = dict(iter_variable_queries(dash)).get("account", "")
        if not re.match(r"label_values\(\s*(%s)\b.*,\s*account\s*\)$" % "|".join(ACCOUNT_SOURCES), q):
            errors.append("variable 'account' must use label_values(<one of %s>, account), has %r"
                          % (", ".join(ACCOUNT_SOURCES), q))
        if v.get("datasource", {}).get("uid") != "${datasource}":
            errors.append("variable 'account' does not use ${datasource}")

    ids = set()
    for p in iter_panels(dash.get("panels", [])):
        title = p.get("title")
        if p.get("id") in ids:
            errors.append("duplicate panel id %r (%r)" % (p.get("id"), title))
        ids.add(p.get("id"))
        if "gridPos" not in p:
            errors.append("panel %r has no gridPos" % title)
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append("panel %r does not use the ${datasource} variable" % title)
        if not p.get("targets"):
            errors.append("panel %r has no query" % title)

    for where, expr, target in iter_queries(dash):
        checked += 1
        if not expr.strip():
            errors.append("%s: empty query" % where)
            continue
        if target.get("datasource", {}).get("uid") != "${datasource}":
            errors.append("%s: target does not use ${datasource}" % where)
        try:
            substitute(expr)
        except ValueError as e:
            errors.append("%s: %s" % (where, e))
        names = metric_names(expr)
        if not names:
            errors.append("%s: no metric found in %r" % (where, expr))
        for n in sorted(names - allowed):
            errors.append("%s: %r is not a metric of the contract" % (where, n))
        for n in names & set(CONTRACT):
            for matchers in selectors(expr, n):
                for var in CONTRACT[n]:
                    if not filters(matchers, var):
                        errors.append('%s: %s{%s} lacks %s=~"$%s"' % (where, n, matchers, var, var))
    for name, q in iter_variable_queries(dash):
        checked += 1
        m = re.match(r"\s*label_values\((.*),\s*\w+\s*\)\s*$", q)
        if not m:
            errors.append("variable %r: expected label_values(<selector>, <label>), has %r" % (name, q))
            continue
        for n in sorted(metric_names(m.group(1)) - allowed):
            errors.append("variable %r: %r is not a metric of the contract" % (name, n))

    for fn, rule, expr in alert_exprs():
        checked += 1
        for n in sorted(metric_names(expr) - allowed - PROMETHEUS_SERIES):
            errors.append("%s rule %s: %r is not a metric of the contract" % (fn, rule, n))
    return errors, checked


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT_DASHBOARD
    errors, checked = check(path)
    for e in errors:
        print("  FAIL %s" % e)
    if errors:
        print("dashboard check: %d problem(s) in %s" % (len(errors), path))
        return 1
    print("dashboard check: %s OK (%d queries and alert expressions use only contract metrics)" % (os.path.relpath(path, ROOT), checked))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

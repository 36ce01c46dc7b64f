#!/usr/bin/env python3
"""Benchmark: the release exporter against the standalone fake API.

Two scenarios, each run BENCH_RUNS times (default 3), printing the median
and the spread (min-max) of every figure:

- static: 1,000 instances given by ID (a week of daily backups each, every
  50th a two-shard cluster): first full pass, API calls per instance, peak
  RSS, /metrics size and latency p50/p99 over a few hundred scrapes.
- discovery: 10,000 instances found by --discovery.regions: the discovery
  round's time and DescribeInstances calls (pages of 50), the first pass
  over all of them, peak RSS, /metrics latency.

Figures, not assertions: these machines are shared and noisy. No rate limit
(--aliyun.rate-limit=0): the figures are the exporter's, not the bucket's.
Loopback only.

Usage: bench/run.sh   (builds, then runs this)
"""
import http.client
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
EXPORTER = sys.argv[1] if len(sys.argv) > 1 else "target/release/aliyun-backup-exporter"
FAKE = sys.argv[2] if len(sys.argv) > 2 else "target/release/examples/fake_api"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def get(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def api_calls(body, action):
    return sum(float(m.group(1)) for m in re.finditer(
        rb'^aliyun_backup_api_requests_total\{[^}]*action="' + action.encode() + rb'"[^}]*\} (\S+)$',
        body, re.M))


def run_once(instances, discovery, scrapes, concurrency):
    fake_port, port = free_port(), free_port()
    fake = subprocess.Popen([FAKE, "--listen", f"127.0.0.1:{fake_port}", "--instances", str(instances)],
                            stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().startswith("listening on"), "fake API did not start"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "testid",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    args = [EXPORTER, f"--aliyun.endpoint=http://127.0.0.1:{fake_port}",
            f"--web.listen-address=127.0.0.1:{port}", "--poll.interval=10m",
            f"--poll.concurrency={concurrency}", "--aliyun.rate-limit=0", "--log.level=info"]
    if discovery:
        args.append("--discovery.regions=cn-hangzhou")
    else:
        args.append("--aliyun.region=cn-hangzhou")
        env["ALIYUN_BACKUP_EXPORTER_REDIS_INSTANCE_ID"] = ",".join(f"r-bench-{i:04}" for i in range(instances))
    log_path = f"/tmp/abe-bench-{os.getpid()}.log"
    with open(log_path, "w") as log:
        started = time.perf_counter()
        exporter = subprocess.Popen(args, env=env, stderr=log, stdout=subprocess.DEVNULL)
    try:
        conn = None
        while True:
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status, _ = get(conn, "/readyz")
                if status == 200:
                    break
            except OSError:
                conn = None
            if time.perf_counter() - started > 600:
                sys.exit("not ready after 600 s")
            time.sleep(0.01)
        first_pass = time.perf_counter() - started
        _, body = get(conn, "/metrics")
        figures = {
            "first pass (s)": first_pass,
            "DescribeBackups calls / instance": api_calls(body, "DescribeBackups") / instances,
        }
        if discovery:
            figures["DescribeInstances calls"] = api_calls(body, "DescribeInstances")
            with open(log_path) as f:
                rounds = [int(m.group(1)) for m in re.finditer(
                    r'message="discovery round finished".* duration_ms=(\d+)', f.read())]
            figures["discovery round (s)"] = rounds[0] / 1000 if rounds else float("nan")
        latencies = []
        for _ in range(scrapes):
            t = time.perf_counter()
            status, body = get(conn, "/metrics")
            latencies.append((time.perf_counter() - t) * 1000)
            assert status == 200
        latencies.sort()
        figures["/metrics p50 (ms)"] = statistics.median(latencies)
        figures["/metrics p99 (ms)"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        figures["/metrics size (KiB)"] = len(body) / 1024
        figures["peak RSS (MiB)"] = peak_rss_kib(exporter.pid) / 1024
        return figures
    finally:
        exporter.terminate()
        fake.terminate()
        exporter.wait(10)
        fake.wait(10)
        os.unlink(log_path)


def report(title, runs):
    print(f"\n{title} ({len(runs)} runs: median [min-max])")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"  {key:34} {statistics.median(values):10.3f}  [{min(values):.3f}-{max(values):.3f}]")


def main():
    print(f"{time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    scenarios = [
        ("static: 1,000 instances by ID, concurrency 4", dict(instances=1000, discovery=False, scrapes=300, concurrency=4)),
        ("discovery: 10,000 instances in one region, concurrency 32",
         dict(instances=10000, discovery=True, scrapes=100, concurrency=32)),
    ]
    only = os.environ.get("BENCH_ONLY")
    for title, params in scenarios:
        if only and only not in title:
            continue
        report(title, [run_once(**params) for _ in range(RUNS)])


if __name__ == "__main__":
    main()

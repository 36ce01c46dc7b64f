#!/usr/bin/env python3
"""Benchmark: the release exporter against the fake API serving 1,000
instances with a week of daily backups (every 50th a two-shard cluster).

Prints peak RSS, /metrics latency p50/p99 over a few hundred scrapes, the
time of the first full pass, and API calls made per pass. Figures, not
assertions: these machines are shared and noisy. Loopback only.

Usage: bench/run.sh   (builds, then runs this)
"""
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import time

INSTANCES = int(os.environ.get("BENCH_INSTANCES", "1000"))
SCRAPES = int(os.environ.get("BENCH_SCRAPES", "300"))
CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "4")
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


def api_calls(body):
    return sum(float(m.group(1)) for m in re.finditer(
        rb'^aliyun_backup_api_requests_total\{[^}]*\} (\S+)$', body, re.M))


def main():
    fake_port, port = free_port(), free_port()
    fake = subprocess.Popen([FAKE, "--listen", f"127.0.0.1:{fake_port}", "--instances", str(INSTANCES)],
                            stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().startswith("listening on"), "fake API did not start"
    ids = ",".join(f"r-bench-{i:04}" for i in range(INSTANCES))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "testid",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret",
        "ALIYUN_BACKUP_EXPORTER_REDIS_INSTANCE_ID": ids,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    started = time.perf_counter()
    exporter = subprocess.Popen(
        [EXPORTER, "--aliyun.region=cn-hangzhou", f"--aliyun.endpoint=http://127.0.0.1:{fake_port}",
         f"--web.listen-address=127.0.0.1:{port}", "--poll.interval=10m", f"--poll.concurrency={CONCURRENCY}",
         "--log.level=warn"],
        env=env, stderr=subprocess.DEVNULL)
    try:
        conn = None
        while True:
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                status, _ = get(conn, "/readyz")
                if status == 200:
                    break
            except OSError:
                conn = None
            if time.perf_counter() - started > 300:
                sys.exit("not ready after 300 s")
            time.sleep(0.01)
        first_pass = time.perf_counter() - started
        _, body = get(conn, "/metrics")
        calls = api_calls(body)
        series = sum(1 for line in body.split(b"\n") if line.startswith(b"aliyun_backup_"))

        latencies = []
        for _ in range(SCRAPES):
            t = time.perf_counter()
            status, body = get(conn, "/metrics")
            latencies.append((time.perf_counter() - t) * 1000)
            assert status == 200
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        rss = peak_rss_kib(exporter.pid)

        print(f"instances                 {INSTANCES} (every 50th with 2 shard nodes), concurrency {CONCURRENCY}")
        print(f"first full pass           {first_pass:.2f} s")
        print(f"API calls in first pass   {calls:.0f} ({calls / INSTANCES:.2f} per instance)")
        print(f"/metrics size             {len(body) / 1024:.0f} KiB, {series} aliyun_backup_* series")
        print(f"/metrics latency          p50 {p50:.2f} ms, p99 {p99:.2f} ms over {SCRAPES} scrapes (client: python http.client, keep-alive)")
        print(f"exporter peak RSS         {rss / 1024:.1f} MiB (VmHWM)")
    finally:
        exporter.terminate()
        fake.terminate()
        exporter.wait(10)
        fake.wait(10)


if __name__ == "__main__":
    main()

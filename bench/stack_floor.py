#!/usr/bin/env python3
"""The memory floor of the exporter's stack, next to the exporter.

`examples/stack_floor.rs` is the exporter's libraries without the
exporter: the same malloc settings, async runtime, HTTP client (reqwest,
rustls) and HTTP server (hyper), making as many API calls as the
exporter's first pass, as many at once, and then serving the exporter's
own /metrics body (and its gzip form) from memory, with no instance kept,
nothing rendered, no configuration and no logging. What it holds is what
any exporter built on this stack holds before doing its own work.

For each of BENCH_RUNS runs (default 3) at each size of BENCH_FLOOR_SIZES
(default 100 and 1,000 instances), as in bench/growth.py: the exporter
(first pass against the fake API, BENCH_SCRAPES sequential scrapes per
encoding, 10 concurrent scrapers for BENCH_CONCURRENT_SECONDS), then
stack_floor doing the same (the same number of calls to a fake API of the
same size, the exporter's body, the same scrapes); the peak RSS (VmHWM) of
each at ready and after the scrapers, the pages of files (the binary and
its libraries) at ready, and what lies past them. Median [min-max].
Figures, not assertions. Loopback only. MB = 10^6 bytes.

Usage: bench/run.sh stack_floor.py
       python3 bench/stack_floor.py [EXPORTER [FAKE_API [STACK_FLOOR]]]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import growth
from growth import CONCURRENCY, MB, SCRAPERS, proc_status

FLOOR = sys.argv[3] if len(sys.argv) > 3 else "target/release/examples/stack_floor"
SIZES = [int(s) for s in os.environ.get("BENCH_FLOOR_SIZES", "100,1000").split(",") if s.strip()]

PEAK = f"peak RSS after {SCRAPERS} scrapers (MB)"
NOW = "RSS after the scrapers (MB)"
ROWS = [
    ("peak RSS at ready (MB)", "peak RSS at ready (MB)"),
    ("  of it file-backed at ready (MB)", "  of it pages of files (MB)"),
    (PEAK, f"peak RSS, {SCRAPERS} scrapers (MB)"),
    ("  of it past the file pages at ready (MB)", "  of it past the pages of files (MB)"),
    (NOW, "RSS then (VmRSS, MB)"),
    ("identity p99 (ms)", "identity p99 (ms)"),
    ("gzip p99 (ms)", "gzip p99 (ms)"),
    (f"threads after {SCRAPERS} scrapers", f"threads after {SCRAPERS} scrapers"),
    ("calls: all, start -> ready", "API calls before serving"),
]


class FloorRun(growth.Run):
    """A fake API and stack_floor pointed at it, until closed."""

    def __init__(self, instances, calls, body):
        self.instances = instances
        self.tmp = tempfile.mkdtemp(prefix="abe-floor-")
        self.exporter_log = os.path.join(self.tmp, "stack_floor.log")
        body_path = os.path.join(self.tmp, "body")
        with open(body_path, "wb") as f:
            f.write(body)
        fake_port, self.port = growth.free_port(), growth.free_port()
        self.fake = subprocess.Popen(
            [growth.FAKE, "--listen", f"127.0.0.1:{fake_port}", "--instances", str(instances),
             "--cluster-every", str(growth.CLUSTER_EVERY), "--latency", f"{growth.LATENCY_MS:g}ms"],
            stdout=subprocess.PIPE, text=True)
        assert self.fake.stdout.readline().startswith("listening on"), "fake API did not start"
        args = [FLOOR, "--listen", f"127.0.0.1:{self.port}", "--body", body_path,
                "--api", f"http://127.0.0.1:{fake_port}/?Action=DescribeBackups",
                "--calls", str(int(calls)), "--concurrency", str(CONCURRENCY)]
        with open(self.exporter_log, "w") as f:
            self.started = time.perf_counter()
            self.exporter = subprocess.Popen(args, stderr=f, stdout=subprocess.DEVNULL)
        self.pid = self.exporter.pid
        self.conn = None
        self.files_at_ready = None

    def first_pass(self):
        f = {"start -> ready, wall (s)": self.wait_ready()}
        f["peak RSS at ready (MB)"] = proc_status(self.pid, "VmHWM") / MB
        self.files_at_ready = proc_status(self.pid, "RssFile")
        f["  of it file-backed at ready (MB)"] = self.files_at_ready / MB
        self.metrics()
        return f


def one_run(instances):
    run = growth.Run(instances, rate_limit=0)
    try:
        exporter, body = run.first_pass()
        run.scrapes(exporter)
        run.concurrent(exporter)
        exporter[NOW] = proc_status(run.pid, "VmRSS") / MB
        body = run.metrics()
    finally:
        run.close()
    calls = exporter["calls: all, start -> ready"]
    run = FloorRun(instances, calls, body)
    try:
        floor = run.first_pass()
        floor["calls: all, start -> ready"] = calls
        run.scrapes(floor)
        run.concurrent(floor)
        floor[NOW] = proc_status(run.pid, "VmRSS") / MB
    finally:
        run.close()
    return exporter, floor


def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return (f"{growth.fmt(statistics.median(values))} "
            f"[{growth.fmt(min(values))}-{growth.fmt(max(values))}]")


def main():
    started = time.perf_counter()
    print(f"Stack floor: examples/stack_floor (the exporter's runtime, HTTP client and server, "
          f"malloc settings; no instance state, no rendering) next to the exporter, at the same "
          f"API calls ({CONCURRENCY} at once), the same body and the same scrapes "
          f"({growth.SCRAPES} sequential per encoding, then {SCRAPERS} concurrent scrapers for "
          f"{growth.CONCURRENT_SECONDS:g} s). MB = 10^6 bytes.")
    for size in SIZES:
        runs = growth.repeat(f"{size:,} instances", growth.RUNS, lambda: one_run(size))
        print(f"\n{size:,} instances ({len(runs)} runs: median [min-max])")
        print(f"  {'':38}{'exporter':>26}{'stack floor':>26}")
        for key, label in ROWS:
            ex = cell([e.get(key) for e, _ in runs])
            fl = cell([f.get(key) for _, f in runs])
            print(f"  {label:38}{ex:>26}{fl:>26}")
    print(f"\n{growth.machine()}; took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

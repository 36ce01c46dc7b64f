#!/usr/bin/env python3
"""Growth benchmark: the release exporter against the standalone fake API at
growing fleet sizes, to see how each figure grows with the number of
instances.

For every size in BENCH_SIZES (default 100, 1,000 and 10,000 instances, one
region, every 10th a two-shard classic cluster, a week of daily backups
each), BENCH_RUNS times (default 3), against a fake that answers every
request after BENCH_LATENCY_MS (default 50 ms), with --poll.concurrency=32,
no rate limit, discovery in cn-hangzhou and --poll.interval=1h (one pass):

- the first pass: the exporter's aliyun_backup_poll_cycle_duration_seconds
  (first start to last finish of the first pass over every instance) next to
  its bound 1.2 x N x latency / concurrency, the wall time from start to
  /readyz 200, and the discovery round;
- API calls by action (the exporter's aliyun_backup_api_requests_total at
  ready), DescribeBackups calls per instance, and what the fake saw;
- the exporter's CPU (utime + stime from /proc) from start to ready, in all
  and per API call;
- peak RSS (VmHWM) at ready (and how much of the resident memory then is
  pages of files: the binary and its libraries) and after 10 concurrent
  scrapers;
- /metrics: BENCH_SCRAPES sequential scrapes without Accept-Encoding
  (identity) and with Accept-Encoding: gzip, p50/p99 client-side (request
  sent to last byte, the body read into a buffer the client keeps, as
  Prometheus does: see Scraper), body sizes, CPU per scrape, and whether the gzip
  body, decompressed, has the same series (names and labels) as an identity
  scrape taken just before it; the floor: the same client getting as many
  bytes from a static server (a Python process that only sendall()s a
  prepared answer with a Content-Length), which is what the client and the
  kernel cost without the exporter; then 10 threads, each with its own
  connection, scraping for BENCH_CONCURRENT_SECONDS, alternating identity
  and gzip.

Then the ratios of the medians between consecutive sizes; a fleet that
changes while it is scraped: BENCH_CHURN_SIZE instances (default 10,000; 0
skips it) polled every BENCH_CHURN_INTERVAL (default 20 s: the poller never
idle, a new snapshot every 200 ms), from the start of the second round of
polls (an interval after the start), BENCH_CHURN_SCRAPES sequential scrapes
alternating identity and gzip (the RSS sampled every millisecond meanwhile:
its median, and its highest sample while each kind of scrape was in flight),
then 10 concurrent scrapers for BENCH_CHURN_SECONDS, peak RSS after each; a
rate-limited pass (--aliyun.rate-limit=100) at BENCH_RATE_LIMITED_SIZE
instances (default 10,000; 0 skips it) with a burst check on the times the
fake logged each request; and the machine and date.

Targets are printed next to the figures with PASS or MISS (on the median;
"worst run MISS" when a single run missed). Figures, not assertions: these
machines are shared and noisy. Loopback only. MB = 10^6 bytes.

Usage: bench/run.sh   (builds, then runs this)
       python3 bench/growth.py [EXPORTER [FAKE_API]]
Env:   BENCH_RUNS=3 BENCH_SIZES=100,1000,10000 BENCH_RATE_LIMITED_SIZE=10000
       BENCH_RATE_LIMITED_RUNS=$BENCH_RUNS BENCH_SCRAPES=200
       BENCH_CONCURRENT_SECONDS=5 BENCH_LATENCY_MS=50 BENCH_CONCURRENCY=32
       BENCH_CLUSTER_EVERY=10 BENCH_JSON=FILE (every run's figures)
       BENCH_CHURN_SIZE=10000 BENCH_CHURN_RUNS=$BENCH_RUNS BENCH_CHURN_INTERVAL=20 (s)
       BENCH_CHURN_SCRAPES=150 BENCH_CHURN_SECONDS=10
"""
import gzip
import http.client
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

EXPORTER = sys.argv[1] if len(sys.argv) > 1 else "target/release/aliyun-backup-exporter"
FAKE = sys.argv[2] if len(sys.argv) > 2 else "target/release/examples/fake_api"

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000,10000").split(",") if s.strip()]
RATE_LIMITED_SIZE = int(os.environ.get("BENCH_RATE_LIMITED_SIZE", "10000"))
RATE_LIMITED_RUNS = int(os.environ.get("BENCH_RATE_LIMITED_RUNS", str(RUNS)))
SCRAPES = int(os.environ.get("BENCH_SCRAPES", "200"))
CONCURRENT_SECONDS = float(os.environ.get("BENCH_CONCURRENT_SECONDS", "5"))
LATENCY_MS = float(os.environ.get("BENCH_LATENCY_MS", "50"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
CLUSTER_EVERY = int(os.environ.get("BENCH_CLUSTER_EVERY", "10"))
CHURN_SIZE = int(os.environ.get("BENCH_CHURN_SIZE", "10000"))
CHURN_RUNS = int(os.environ.get("BENCH_CHURN_RUNS", str(RUNS)))
CHURN_INTERVAL = float(os.environ.get("BENCH_CHURN_INTERVAL", "20"))  # seconds
CHURN_SCRAPES = int(os.environ.get("BENCH_CHURN_SCRAPES", "150"))
CHURN_SECONDS = float(os.environ.get("BENCH_CHURN_SECONDS", "10"))
SCRAPERS = 10
JITTER = 0.005  # s: how much earlier a request may arrive, relative to others, than its token allows
RATE = 100  # the rate-limited pass: --aliyun.rate-limit, tokens a second and bucket size
POLL_ACTIONS = ("DescribeBackups", "DescribeBackupPolicy", "DescribeClusterBackupList")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, field):
    """A number from /proc/PID/status; kB fields in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                parts = line.split()
                return int(parts[1]) * (1024 if parts[-1] == "kB" else 1)
    return 0


class RssSampler:
    """VmRSS every millisecond in a thread, between start and stop, each
    sample under the label set last (what is being done then): a peak
    that lasts a few milliseconds (an update of the rendered form) shows
    above the usual level."""

    def __init__(self, pid):
        self.pid, self.samples, self.running, self.label = pid, [], True, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.samples.append((self.label, proc_status(self.pid, "VmRSS")))
            time.sleep(0.001)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.samples


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def get(conn, path, gzip_=False):
    """One GET; no Accept-Encoding at all unless gzip_. Returns status,
    Content-Encoding, body, seconds from sending to the last byte. For the
    bodies the benchmark reads (not for timing scrapes: see Scraper)."""
    t = time.perf_counter()
    resp = request(conn, path, gzip_)
    body = resp.read()
    return resp.status, resp.getheader("Content-Encoding"), body, time.perf_counter() - t


def request(conn, path, gzip_):
    """Sends a GET (no Accept-Encoding at all unless gzip_); its response."""
    conn.putrequest("GET", path, skip_accept_encoding=True)
    if gzip_:
        conn.putheader("Accept-Encoding", "gzip")
    conn.endheaders()
    return conn.getresponse()


PAGE = 4096


def touched(size):
    """A buffer of `size` bytes whose pages are already faulted in."""
    buf = bytearray(size)
    buf[::PAGE] = b"\1" * len(range(0, size, PAGE))
    return buf


class Scraper:
    """A keep-alive connection that reads every body into one buffer it
    keeps, as Prometheus does (its scrape buffers come from a pool) and
    curl does (it streams through a small one): the client of every timed
    scrape, of the exporter and of the floor alike. http.client's read()
    makes a new object per body, and its first bodies of a size cost the
    client page faults until malloc settles (from a fresh client, the
    static server's 2.65 MB took 3.9, 1.9, 1.7 and 1.5 ms, then 0.5): the
    exporter's first timed scrapes paid for that, the floor's (measured
    later by the same process) did not, and the 99th percentile of 200 is
    the second slowest. The buffer is sized and touched before the first
    timed scrape."""

    def __init__(self, port, size, conn=None):
        self.conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.buf = touched(size)

    def get(self, path, gzip_=False):
        """One GET, as get(); returns status, Content-Encoding, the body's
        length and the seconds from sending to the last byte."""
        t = time.perf_counter()
        resp = request(self.conn, path, gzip_)
        n = 0
        while True:
            if n == len(self.buf):  # outgrown: a copy, inside the timing
                self.buf.extend(bytes(len(self.buf)))
            got = resp.readinto(memoryview(self.buf)[n:])
            if not got:
                break
            n += got
        return resp.status, resp.getheader("Content-Encoding"), n, time.perf_counter() - t

    def body(self, n):
        return bytes(self.buf[:n])

    def close(self):
        self.conn.close()


def api_calls(body):
    calls = {}
    for m in re.finditer(rb'^aliyun_backup_api_requests_total\{([^}]*)\} (\S+)$', body, re.M):
        action = re.search(rb'action="([^"]*)"', m.group(1))
        name = action.group(1).decode() if action else "?"
        calls[name] = calls.get(name, 0) + float(m.group(2))
    return calls


def metric(body, name):
    m = re.search(rb"^" + name.encode() + rb"(?:\{[^}]*\})? (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def series(body):
    """The series of an exposition (name and labels, without values)."""
    out = set()
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        brace, space = line.find("{"), line.find(" ")
        if brace < 0 or (0 <= space < brace):
            out.add(line[:space] if space >= 0 else line)
            continue
        i, quoted = brace + 1, False
        while i < len(line):  # to the closing brace outside a quoted value
            c = line[i]
            if quoted and c == "\\":
                i += 1
            elif c == '"':
                quoted = not quoted
            elif c == "}" and not quoted:
                break
            i += 1
        out.add(line[:i + 1])
    return out


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else None


def request_log(path):
    times, actions = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                times.append(float(parts[0]))
                actions.append(parts[1])
    return times, actions


def burst(times, rate, bucket):
    """Against a token bucket of `bucket` tokens refilled at `rate`/s: the
    largest (requests in a window of length T) - (bucket + rate*T) over all
    windows, and the most requests in any 1 s and any 0.1 s window."""
    worst, low = -math.inf, math.inf
    for j, t in enumerate(times):
        low = min(low, j - rate * t)  # windows [t_i, t_j], i <= j
        worst = max(worst, (j - rate * t) - low + 1 - bucket)
    def most_in(width):
        best, i = 0, 0
        for j, t in enumerate(times):
            while times[i] < t - width:
                i += 1
            best = max(best, j - i + 1)
        return best
    return worst, most_in(1.0), most_in(0.1)


# A server that sends a fixed body of N bytes with a Content-Length, as fast
# as the kernel takes it: what the same client needs for the same number of
# bytes when the server does nothing else (the floor under a scrape's time).
FLOOR_SERVER = r"""
import socket, sys
size = int(sys.argv[1])
line = b"x" * 99 + b"\n"
body = line * (size // 100) + b"x" * (size % 100)
answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    requests = conn.makefile("rb")
    try:
        while True:
            while True:
                head = requests.readline()
                if not head:
                    raise EOFError
                if head in (b"\r\n", b"\n"):
                    break
            conn.sendall(answer)
    except (EOFError, OSError):
        pass
    conn.close()
"""


def floor(size, n):
    """p50 and p99 of `n` GETs of a `size`-byte body from FLOOR_SERVER."""
    server = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(size)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        client = Scraper(port, size + size // 4)
        times = []
        for _ in range(n):
            status, _, length, dt = client.get("/")
            assert status == 200 and length == size, (status, length)
            times.append(dt * 1000)
        client.close()
        return statistics.median(times), pct(times, 0.99)
    finally:
        server.terminate()
        server.wait(10)


class Run:
    """A fake API and an exporter pointed at it, until closed."""

    def __init__(self, instances, rate_limit, interval="1h"):
        self.instances = instances
        self.tmp = tempfile.mkdtemp(prefix="abe-growth-")
        self.request_log = os.path.join(self.tmp, "requests.log")
        self.exporter_log = os.path.join(self.tmp, "exporter.log")
        fake_port, self.port = free_port(), free_port()
        self.fake = subprocess.Popen(
            [FAKE, "--listen", f"127.0.0.1:{fake_port}", "--instances", str(instances),
             "--cluster-every", str(CLUSTER_EVERY), "--latency", f"{LATENCY_MS:g}ms",
             "--request-log", self.request_log],
            stdout=subprocess.PIPE, text=True)
        assert self.fake.stdout.readline().startswith("listening on"), "fake API did not start"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "testid",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret",
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        }
        args = [EXPORTER, f"--aliyun.endpoint=http://127.0.0.1:{fake_port}",
                f"--web.listen-address=127.0.0.1:{self.port}", f"--poll.interval={interval}",
                f"--poll.concurrency={CONCURRENCY}", f"--aliyun.rate-limit={rate_limit}",
                "--discovery.regions=cn-hangzhou", "--log.level=info"]
        with open(self.exporter_log, "w") as f:
            self.started = time.perf_counter()
            self.exporter = subprocess.Popen(args, env=env, stderr=f, stdout=subprocess.DEVNULL)
        self.pid = self.exporter.pid
        self.conn = None
        self.files_at_ready = None

    def wait_ready(self, progress=None):
        """Polls /readyz (every 1 % of the time so far, 5-100 ms) until 200;
        returns the wall time from start."""
        last_progress = time.perf_counter()
        while True:
            now = time.perf_counter()
            elapsed = now - self.started
            try:
                self.conn = self.conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, _, _, _ = get(self.conn, "/readyz")
                if status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                self.conn = None
            if self.exporter.poll() is not None:
                sys.exit(f"the exporter exited with {self.exporter.returncode}; see {self.exporter_log}")
            if elapsed > 1800:
                sys.exit("not ready after 1800 s")
            if progress and now - last_progress >= 15:
                last_progress = now
                progress(elapsed)
            time.sleep(min(0.1, max(0.005, elapsed * 0.01)))

    def metrics(self):
        status, _, body, _ = get(self.conn, "/metrics")
        assert status == 200, status
        self.body_size = len(body)
        return body

    def scraper(self, conn=None):
        """A Scraper whose buffer holds the last body read and then some."""
        return Scraper(self.port, self.body_size + self.body_size // 4 + PAGE, conn)

    def first_pass(self):
        """Waits until the first pass is over; the figures of start -> ready."""
        f = {}
        f["start -> ready, wall (s)"] = self.wait_ready(self.progress if self.rate_limited else None)
        f["CPU start -> ready (s)"] = cpu_seconds(self.pid)
        f["peak RSS at ready (MB)"] = proc_status(self.pid, "VmHWM") / MB
        # Of which pages of files (the binary and its libraries: fixed).
        self.files_at_ready = proc_status(self.pid, "RssFile")
        f["  of it file-backed at ready (MB)"] = self.files_at_ready / MB
        while True:  # the cycle metric appears with the first complete pass
            body = self.metrics()
            cycle = metric(body, "aliyun_backup_poll_cycle_duration_seconds")
            if cycle is not None:
                break
            time.sleep(0.05)
        f["first pass: poll cycle (s)"] = cycle
        if not self.rate_limited:
            f["first pass bound (s)"] = 1.2 * self.instances * LATENCY_MS / 1000 / CONCURRENCY
        with open(self.exporter_log) as fh:
            rounds = re.findall(r'message="discovery round finished".* duration_ms=(\d+)', fh.read())
        f["discovery round (s)"] = int(rounds[0]) / 1000 if rounds else None
        calls = api_calls(body)
        total = sum(calls.values())
        for action in ("DescribeInstances",) + POLL_ACTIONS:
            f[f"calls: {action}"] = calls.pop(action, 0)
        f["calls: other actions"] = sum(calls.values())
        f["calls: all, start -> ready"] = total
        f["DescribeBackups / instance"] = f["calls: DescribeBackups"] / self.instances
        f["DescribeBackupPolicy / instance"] = f["calls: DescribeBackupPolicy"] / self.instances
        times, _ = request_log(self.request_log)
        f["calls the fake saw"] = len(times)
        f["CPU / API call (us)"] = f["CPU start -> ready (s)"] / total * 1e6 if total else None
        return f, body

    rate_limited = False

    def progress(self, elapsed):
        pass

    def scrapes(self, f):
        n = SCRAPES
        ident, gz = [], []
        client = self.scraper(self.conn)
        cpu = cpu_seconds(self.pid)
        for _ in range(n):
            status, _, length, dt = client.get("/metrics")
            assert status == 200, status
            ident.append(dt * 1000)
        f["CPU / identity scrape (ms)"] = (cpu_seconds(self.pid) - cpu) / n * 1000
        body = client.body(length)
        f["identity body (MB)"] = len(body) / MB
        f["series"] = len(series(body))
        f["identity p50 (ms)"] = statistics.median(ident)
        f["identity p99 (ms)"] = pct(ident, 0.99)
        f["floor: same bytes, static server, p50 (ms)"], f["floor: same bytes, static server, p99 (ms)"] = \
            floor(len(body), n)
        _, encoding, zbody, _ = get(self.conn, "/metrics", gzip_=True)
        self.gzip = encoding == "gzip"
        if self.gzip:
            same = series(gzip.decompress(zbody)) == series(self.metrics())
            cpu = cpu_seconds(self.pid)
            for _ in range(n):
                status, encoding, zlength, dt = client.get("/metrics", gzip_=True)
                assert status == 200 and encoding == "gzip", (status, encoding)
                gz.append(dt * 1000)
            f["CPU / gzip scrape (ms)"] = (cpu_seconds(self.pid) - cpu) / n * 1000
            f["gzip body (MB)"] = zlength / MB
            f["identity / gzip size"] = len(body) / zlength
            f["gzip p50 (ms)"] = statistics.median(gz)
            f["gzip p99 (ms)"] = pct(gz, 0.99)
            f["gzip series = identity series"] = 1.0 if same else 0.0

    def concurrent(self, f, seconds=CONCURRENT_SECONDS):
        latencies, errors = [], []
        clients = [self.scraper() for _ in range(SCRAPERS)]
        stop = time.perf_counter() + seconds

        def scraper(k):
            client = clients[k]
            mine, i = [], k
            try:
                while time.perf_counter() < stop:
                    status, _, _, dt = client.get("/metrics", gzip_=self.gzip and i % 2 == 1)
                    if status != 200:
                        errors.append(status)
                    mine.append(dt * 1000)
                    i += 1
            except OSError as e:
                errors.append(repr(e))
            finally:
                client.close()
            latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=scraper, args=(k,)) for k in range(SCRAPERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        if errors:
            log(f"  {len(errors)} errors with {SCRAPERS} scrapers: {errors[:3]}")
        f[f"{SCRAPERS} scrapers: scrapes / s"] = len(latencies) / wall
        f[f"{SCRAPERS} scrapers: p50 (ms)"] = statistics.median(latencies) if latencies else None
        f[f"{SCRAPERS} scrapers: p99 (ms)"] = pct(latencies, 0.99)
        peak = proc_status(self.pid, "VmHWM")
        f[f"peak RSS after {SCRAPERS} scrapers (MB)"] = peak / MB
        # The anonymous memory at the peak, at most (pages of files only
        # grow after ready): what the process made, not the binary's and
        # the libraries' pages.
        if self.files_at_ready:
            f["  of it past the file pages at ready (MB)"] = (peak - self.files_at_ready) / MB
        f[f"threads after {SCRAPERS} scrapers"] = proc_status(self.pid, "Threads")

    def close(self):
        for p in (self.exporter, self.fake):
            p.terminate()
        for p in (self.exporter, self.fake):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.conn:
            self.conn.close()
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)


def growth_run(instances):
    run = Run(instances, rate_limit=0)
    try:
        f, _ = run.first_pass()
        run.scrapes(f)
        run.concurrent(f)
        return f, run.gzip
    finally:
        run.close()


def churn_run(instances):
    """A fleet polled every CHURN_INTERVAL: scrapes while polls finish."""
    run = Run(instances, rate_limit=0, interval=f"{CHURN_INTERVAL:g}s")
    try:
        f = {"start -> ready, wall (s)": run.wait_ready()}
        f["peak RSS at ready (MB)"] = proc_status(run.pid, "VmHWM") / MB
        # Each instance's second poll is due an interval and its offset (up
        # to another interval) after the start: from then on polls never stop.
        time.sleep(max(0.0, run.started + 1.1 * CHURN_INTERVAL - time.perf_counter()))
        lat = {False: [], True: []}
        calls = api_total(run.metrics())
        client = run.scraper(run.conn)
        cpu, started = cpu_seconds(run.pid), time.perf_counter()
        sampler = RssSampler(run.pid)
        for i in range(CHURN_SCRAPES):
            sampler.label = i % 2 == 1
            status, _, _, dt = client.get("/metrics", gzip_=i % 2 == 1)
            assert status == 200, status
            lat[i % 2 == 1].append(dt * 1000)
        wall = time.perf_counter() - started
        rss = sampler.stop()
        f["RSS while scraped: median (MB)"] = statistics.median(r for _, r in rss) / MB
        f["API calls / s while scraped"] = (api_total(run.metrics()) - calls) / wall
        f["CPU / s while scraped (s)"] = (cpu_seconds(run.pid) - cpu) / wall
        for gz, name in ((False, "identity"), (True, "gzip")):
            f[f"RSS: highest sample, {name} scrapes (MB)"] = max(
                (r for label, r in rss if label == gz), default=0) / MB
            f[f"{name} p50 (ms)"] = statistics.median(lat[gz])
            f[f"{name} p99 (ms)"] = pct(lat[gz], 0.99)
        f[f"peak RSS after {CHURN_SCRAPES} sequential (MB)"] = proc_status(run.pid, "VmHWM") / MB
        run.gzip = True
        run.concurrent(f, CHURN_SECONDS)
        return f
    finally:
        run.close()


def api_total(body):
    return sum(api_calls(body).values())


class RateLimitedRun(Run):
    rate_limited = True

    def progress(self, elapsed):
        times, _ = request_log(self.request_log)
        expected = (self.instances * 2 + self.instances / 50) / RATE
        log(f"  rate-limited pass, {self.instances:,} instances: {elapsed:.0f} s, "
            f"{len(times):,} requests so far (about {expected:.0f} s in all)")


def rate_limited_run(instances):
    run = RateLimitedRun(instances, rate_limit=RATE)
    try:
        f, _ = run.first_pass()
        times, actions = request_log(run.request_log)
        polls = [i for i, a in enumerate(actions) if a in POLL_ACTIONS]
        calls = polls[-1] - polls[0] + 1 if polls else 0
        f["calls in the pass (all actions)"] = calls
        f["pass bound: calls / rate (s)"] = calls / RATE
        # The bucket is full when the pass starts: its first RATE calls go at once.
        f["bucket model: (calls-100)/100 + lat. (s)"] = max(0, calls - RATE) / RATE + LATENCY_MS / 1000
        f["pass from the fake's log (s)"] = (times[polls[-1]] - times[polls[0]] + LATENCY_MS / 1000
                                             if polls else None)
        worst, per_second, per_tenth = burst(times, RATE, RATE)
        f["burst: worst window - (100 + 100 T)"] = worst
        f["burst: most requests in any 1 s"] = per_second
        f["burst: most requests in any 0.1 s"] = per_tenth
        return f
    finally:
        run.close()


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000 or v == int(v):
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def check(values, target):
    """PASS/MISS of the median, and whether a single run missed."""
    if target is None:
        return ""
    text, ok = target
    values = [v for v in values if v is not None]
    if not values:
        return f"{text}  -"
    verdict = "PASS" if ok(statistics.median(values)) else "MISS"
    if verdict == "PASS" and not all(ok(v) for v in values):
        verdict += " (worst run MISS)"
    return f"{text}  {verdict}"


def targets(instances, runs):
    bound = 1.2 * instances * LATENCY_MS / 1000 / CONCURRENCY
    t = {
        "first pass: poll cycle (s)": (f"<= {fmt(bound)} s (1.2 N {LATENCY_MS:g} ms / {CONCURRENCY})",
                                       lambda v: v <= bound),
        "DescribeBackups / instance": ("= 1", lambda v: abs(v - 1) < 1e-9),
    }
    if instances == 10000:
        t.update({
            "identity p99 (ms)": ("< 20 ms", lambda v: v < 20),
            f"peak RSS after {SCRAPERS} scrapers (MB)": ("< 40 MB", lambda v: v < 40),
            "CPU start -> ready (s)": ("< 5 s", lambda v: v < 5),
            "identity / gzip size": (">= 8", lambda v: v >= 8),
            "gzip p99 (ms)": ("< 100 ms", lambda v: v < 100),
        })
    elif instances == 1000:
        t.update({
            f"peak RSS after {SCRAPERS} scrapers (MB)": ("< 10 MB", lambda v: v < 10),
            "identity p99 (ms)": ("< 3 ms", lambda v: v < 3),
            "gzip p99 (ms)": ("< 10 ms", lambda v: v < 10),
        })
    return t


YES_NO = {"gzip series = identity series"}


def table(title, runs, target_of):
    print(f"\n{title} ({len(runs)} run{'s' if len(runs) != 1 else ''}: median [min-max])")
    keys = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    for key in keys:
        values = [r.get(key) for r in runs]
        present = [v for v in values if v is not None]
        if not present:
            text = "-"
        elif key in YES_NO:
            no = sum(1 for v in present if not v)
            text = "yes" if not no else f"no ({no} of {len(present)} runs)"
        else:
            med = statistics.median(present)
            sep = " to " if min(present) < 0 else "-"
            text = f"{fmt(med):>9}  [{fmt(min(present))}{sep}{fmt(max(present))}]"
        print(f"  {key:40} {text:30} {check(values, target_of.get(key))}".rstrip())


RATIO_KEYS = [
    ("first pass: poll cycle (s)", "first pass"),
    ("calls: all, start -> ready", "calls"),
    ("CPU start -> ready (s)", "CPU to ready"),
    ("peak RSS at ready (MB)", "peak RSS at ready"),
    (f"peak RSS after {SCRAPERS} scrapers (MB)", f"peak RSS, {SCRAPERS} scrapers"),
    ("identity body (MB)", "identity body"),
    ("gzip body (MB)", "gzip body"),
    ("identity p50 (ms)", "identity p50"),
    ("identity p99 (ms)", "identity p99"),
    ("gzip p50 (ms)", "gzip p50"),
    ("gzip p99 (ms)", "gzip p99"),
    ("CPU / identity scrape (ms)", "CPU / identity scrape"),
    ("CPU / gzip scrape (ms)", "CPU / gzip scrape"),
]


def median_of(runs, key):
    values = [r.get(key) for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratios(results):
    sizes = sorted(results)
    if len(sizes) < 2:
        return
    print("\nGrowth between consecutive sizes (ratio of the medians; "
          "'<< faster than linear' when above 1.1 x the size ratio)")
    header = "".join(f"{f'{a:,} -> {b:,}':>20}" for a, b in zip(sizes, sizes[1:]))
    print(f"  {'':28}{header}")
    print(f"  {'instances':28}" + "".join(f"{f'x{b / a:g}':>20}" for a, b in zip(sizes, sizes[1:])))
    for key, label in RATIO_KEYS:
        cells, flag = [], False
        for a, b in zip(sizes, sizes[1:]):
            x, y = median_of(results[a], key), median_of(results[b], key)
            if x is None or y is None or x == 0:
                cells.append(f"{'-':>20}")
                continue
            r = y / x
            flag |= r > 1.1 * b / a
            cells.append(f"{f'x{r:.2f}':>20}")
        print(f"  {label:28}" + "".join(cells) + ("   << faster than linear" if flag else ""))


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.machine()}, {os.cpu_count()} cores"
            f"{f' ({model})' if model else ''}, {platform.platform()}")


def repeat(what, n, run):
    """The figures of n runs of a scenario, each announced on stderr."""
    runs = []
    for k in range(n):
        log(f"{what}, run {k + 1}/{n}")
        runs.append(run())
    return runs


def main():
    started = time.perf_counter()
    print(f"Growth benchmark: fake API answering after {LATENCY_MS:g} ms, every {CLUSTER_EVERY}th "
          f"instance a two-shard cluster, --poll.concurrency={CONCURRENCY}, discovery in one "
          f"region, {SCRAPES} sequential scrapes per encoding, {SCRAPERS} concurrent scrapers for "
          f"{CONCURRENT_SECONDS:g} s. MB = 10^6 bytes; latencies client-side, to the last byte.")
    results, gzip_ok, dump = {}, {}, {}
    for size in SIZES:
        runs = []
        for k in range(RUNS):
            log(f"{size:,} instances, run {k + 1}/{RUNS}")
            f, ok = growth_run(size)
            runs.append(f)
            gzip_ok[size] = ok
        results[size] = runs
        dump[str(size)] = runs
        table(f"{size:,} instances, --aliyun.rate-limit=0", runs, targets(size, runs))
        if not gzip_ok[size]:
            print("  gzip: not supported (no Content-Encoding: gzip in the answer)")
    ratios(results)
    if CHURN_SIZE > 0:
        runs = repeat(f"churn, {CHURN_SIZE:,} instances", CHURN_RUNS, lambda: churn_run(CHURN_SIZE))
        dump["churn"] = runs
        table(f"A fleet that changes while it is scraped: {CHURN_SIZE:,} instances, "
              f"--poll.interval={CHURN_INTERVAL:g}s, {CHURN_SCRAPES} sequential scrapes (identity and "
              f"gzip in turn), then {SCRAPERS} concurrent scrapers for {CHURN_SECONDS:g} s", runs, {})
    if RATE_LIMITED_SIZE > 0:
        runs = repeat(f"rate-limited pass, {RATE_LIMITED_SIZE:,} instances", RATE_LIMITED_RUNS,
                      lambda: rate_limited_run(RATE_LIMITED_SIZE))
        dump["rate-limited"] = runs
        cycle_ok = lambda r: (r["first pass: poll cycle (s)"] is not None and
                              abs(r["first pass: poll cycle (s)"] / r["pass bound: calls / rate (s)"] - 1) <= 0.05)
        table_targets = {
            "DescribeBackups / instance": ("= 1", lambda v: abs(v - 1) < 1e-9),
            # Arrival times, not token times: allow JITTER of network jitter.
            "burst: worst window - (100 + 100 T)": (f"<= {RATE * JITTER:g} ({JITTER * 1000:g} ms jitter)",
                                                    lambda v: v <= RATE * JITTER),
        }
        table(f"Rate-limited pass: {RATE_LIMITED_SIZE:,} instances, --aliyun.rate-limit={RATE}",
              runs, table_targets)
        verdicts = [cycle_ok(r) for r in runs]
        med = [r["first pass: poll cycle (s)"] / r["pass bound: calls / rate (s)"] for r in runs]
        verdict = "PASS" if abs(statistics.median(med) - 1) <= 0.05 else "MISS"
        if verdict == "PASS" and not all(verdicts):
            verdict += " (worst run MISS)"
        print(f"  poll cycle / (calls / {RATE}): {fmt(statistics.median(med))} "
              f"[{fmt(min(med))}-{fmt(max(med))}]   target 1 +/- 5 %  {verdict}")
        print(f"  (A bucket of {RATE} tokens refilled at {RATE}/s; every attempt of every action "
              f"takes one. 'calls in the pass': every request the fake received from the first "
              f"poll request (DescribeBackups, DescribeBackupPolicy, DescribeClusterBackupList) "
              f"to the last, of any action. The burst check covers every request from start to "
              f"ready, discovery included, at its arrival at the fake; the bucket allows 100 + 100 T "
              f"requests in any window of length T, 200 in any 1 s, 110 in any 0.1 s.)")
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump(dump, f, indent=1)
    print(f"\n{machine()}; took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""Load test of ``fastnn serve`` on 127.0.0.1 with wrk, a native load generator.

    python -m benchmarks.serve_load [--workers 1,2] [--connections 8] [--requests 2000]
                                    [--model PATH] [--json FILE]

For each worker count: start ``fastnn serve MODEL --workers N`` on a free loopback port, warm
it up, then run two equal rounds of ``connections`` keep-alive connections x ``requests``
requests each of POST /predict with one MNIST test digit as JSON ({"pixels": [784 numbers]}).
wrk (Debian: apt-get install wrk) runs one thread; a Lua script stops it after the requests
(then a SIGINT ends wrk's timed run, as Ctrl-C does) and reports its latency percentiles.
Reported: requests/s, p50/p90/p99 latency, errors (socket errors and non-2xx answers), the
server's CPU time per request, its resident memory after each round and the CPUs other
processes used meanwhile. The run fails (exit 1) on any error or if the server's memory grows
by more than 1 MiB per process from round 1 to round 2 (equal work, so a leak shows).

The model's share of a request is measured in this process: the forward pass with every
layer's activations that a single-sample /predict runs, against the server's CPU time per
request. Without a model file the default digits-16 (cached or trained on MNIST) is used.
Everything stays on 127.0.0.1 and every run is bounded in requests and in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fastnn.bench.machine import cpu_snapshot, wait_idle

GOAL_RPS, GOAL_P99_MS = 2000, 20.0
RSS_GROWTH_LIMIT_KIB = 1024       # per server process, between two equal rounds
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
local limit, count = {limit}, 0
function response(status, headers, body)
  count = count + 1
  if count == limit then
    wrk.thread:stop()
    io.open("{marker}", "w"):close()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('FASTNN_RESULT {{"requests": %d, "duration_us": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}}\\n', summary.requests, summary.duration, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid):
    """pid and every process below it (uvicorn's workers are children of its supervisor)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return 0


def _cpu_seconds(pids):
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])        # utime + stime
        except OSError:
            pass
    return total / tick


class Server:
    def __init__(self, model, workers):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastnn", "serve", str(model), "--port", str(self.port),
             "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.workers = workers
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fastnn serve exited:\n{self.proc.stdout.read()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    pass
                if len(self.serving_pids()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("fastnn serve did not start within 120 s")

    def serving_pids(self):
        """The processes that answer requests: the workers, or the one process."""
        pids = _descendants(self.proc.pid)
        if self.workers == 1:
            return pids[:1]
        return [p for p in pids[1:] if _rss_kib(p) > 40_000]   # not the tiny resource tracker

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read()


def run_wrk(wrk, url, connections, total, workdir, body_path, max_seconds):
    """One wrk run of ``total`` requests. wrk's main thread sleeps for the whole -d, so when
    the Lua script has seen the last answer (it leaves a marker file) we end that sleep with
    SIGINT, as Ctrl-C does, and wrk reports the run up to there."""
    script, marker = Path(workdir) / "post.lua", Path(workdir) / "done"
    marker.unlink(missing_ok=True)
    script.write_text(LUA.format(body=body_path, limit=total, marker=marker))
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max_seconds}s", "-s", str(script),
           url + "/predict"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + max_seconds + 30
    while proc.poll() is None and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    line = next((s for s in out.splitlines() if s.startswith("FASTNN_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out}\n{err}")
    r = json.loads(line.split(" ", 1)[1])
    r["errors"] = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def measure(model_path, workers, connections, per_connection, wrk, body_path, workdir):
    total = connections * per_connection
    server = Server(model_path, workers)
    try:
        run_wrk(wrk, server.url, connections, min(total, 2000), workdir, body_path, 60)  # warm-up
        rounds = []
        for _ in range(2):
            pids = server.serving_pids()
            cpu0, snap0 = _cpu_seconds(pids), cpu_snapshot()
            r = run_wrk(wrk, server.url, connections, total, workdir, body_path, 120)
            server_cpu, snap1 = _cpu_seconds(pids) - cpu0, cpu_snapshot()
            r["server_cpu_us"] = server_cpu / max(r["requests"], 1) * 1e6
            # CPUs used meanwhile by everything but the server, wrk and this script
            r["other_cpus"] = max(0.0, (snap1[0] - snap0[0]) - (snap1[1] - snap0[1])
                                  - server_cpu) / (snap1[2] - snap0[2])
            r["rss_kib"] = {p: _rss_kib(p) for p in pids}
            rounds.append(r)
    finally:
        printed = server.stop()
    growth = max(rounds[1]["rss_kib"][p] - rounds[0]["rss_kib"][p] for p in rounds[0]["rss_kib"])
    return {"workers": workers, "rounds": rounds, "rss_growth_kib": growth,
            "traceback": "Traceback" in printed}


def model_share(model_path, body):
    """Median CPU microseconds of the model's forward pass, and of all of a request's Python
    work outside the HTTP server (JSON parse, checks, forward, JSON response)."""
    import numpy as np
    from starlette.responses import JSONResponse

    from fastnn.io import load
    from fastnn.serve import model_view
    from fastnn.serve.app import Predictor
    from fastnn.serve.inputs import parse_json, parse_predict

    model = load(model_path)
    p = Predictor(model)
    x = parse_predict(parse_json(body), 784, True, model.dtype)[1]

    def handle():
        doc = parse_json(body)
        _, row = parse_predict(doc, 784, True, model.dtype)
        return JSONResponse(p.one(row)).body

    def median_us(fn, n=3000):
        # CPU time, not wall time: on a shared machine the wall clock also counts the time
        # other processes hold the CPU; the server's figure it is compared with is CPU time too
        for _ in range(200):
            fn()
        times = []
        for _ in range(15):
            t0 = time.process_time()
            for _ in range(n // 15):
                fn()
            times.append((time.process_time() - t0) / (n // 15))
        return statistics.median(times) * 1e6

    return {"forward_us": median_us(lambda: model_view.forward(model, x)),
            "predict_one_us": median_us(lambda: model.predict(x)),
            "handler_us": median_us(handle), "input_bytes": len(body),
            "model": repr(model), "dtype": model.dtype.name,
            "x_nonzero": int(np.count_nonzero(x))}


def _args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="uvicorn worker counts to try")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--requests", type=int, default=2000, help="requests per connection")
    p.add_argument("--model", help="a model file (default: the cached/trained digits-16)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each worker count, wait up to this long for a quiet machine")
    return p.parse_args(argv)


def main(argv=None):
    a = _args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("serve_load: wrk not found (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    from fastnn.datasets import load_mnist
    from fastnn.serve.default_model import load_or_train

    model_path = a.model or load_or_train(say=lambda s: print(s, flush=True))[1]
    _, (xt, _) = load_mnist(verbose=False)
    body = json.dumps({"pixels": [round(float(v), 4) for v in xt[0]]}).encode()
    import importlib.util
    stack = {m: importlib.util.find_spec(m) is not None for m in ("httptools", "uvloop")}
    load_before = os.getloadavg()
    results = {"command": " ".join(["python -m benchmarks.serve_load", *(argv or sys.argv[1:])]),
               "cpus": os.cpu_count(), "loadavg_before": load_before,
               "connections": a.connections, "requests_per_connection": a.requests,
               "httptools": stack["httptools"], "uvloop": stack["uvloop"],
               "share": model_share(model_path, body), "runs": []}
    print(f"uvicorn's HTTP parser: {'httptools' if stack['httptools'] else 'h11'}; event loop: "
          f"{'uvloop' if stack['uvloop'] else 'asyncio'}", flush=True)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        for w in (int(s) for s in a.workers.split(",")):
            if a.wait_idle:
                wait_idle(a.wait_idle, print)
            run = measure(model_path, w, a.connections, a.requests, wrk, body_path, tmp)
            results["runs"].append(run)
            ok &= _report(run, a.connections * a.requests, results["share"])
    results["loadavg_after"] = os.getloadavg()
    s = results["share"]
    print(f"\nmodel: {s['model']}; in-process CPU medians: forward with activations "
          f"{s['forward_us']:.1f} us, model.predict(one sample) {s['predict_one_us']:.1f} us, "
          f"whole handler without HTTP (JSON in, checks, forward, JSON out) "
          f"{s['handler_us']:.1f} us; body {s['input_bytes']} bytes")
    print(f"load average before {load_before[0]:.2f}, after {results['loadavg_after'][0]:.2f} "
          f"(other processes share this machine's {os.cpu_count()} CPUs)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str))
    return 0 if ok else 1


def _report(run, expected, share):
    ok = True
    for i, r in enumerate(run["rounds"], 1):
        good = r["errors"] == 0 and r["requests"] >= expected
        ok &= good
        rss = sum(r["rss_kib"].values()) / 1024
        print(f"workers {run['workers']} round {i}: {r['requests']} requests, "
              f"{r['errors']} errors, {r['rps']:,.0f} requests/s, p50 {r['p50_us'] / 1000:.2f} "
              f"ms, p90 {r['p90_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
              f"max {r['max_us'] / 1000:.1f} ms; server CPU {r['server_cpu_us']:.0f} us/request "
              f"(model forward {100 * share['forward_us'] / r['server_cpu_us']:.0f}%); "
              f"server RSS {rss:.1f} MiB; other processes used {r['other_cpus']:.2f} CPUs"
              + ("" if good else "  <-- FAILED"), flush=True)
    grew = run["rss_growth_kib"] > RSS_GROWTH_LIMIT_KIB
    met = sum(r["rps"] >= GOAL_RPS and r["p99_us"] / 1000 <= GOAL_P99_MS for r in run["rounds"])
    print(f"workers {run['workers']}: RSS growth round 1 -> 2: {run['rss_growth_kib']} KiB per "
          f"process (limit {RSS_GROWTH_LIMIT_KIB}){'  <-- FAILED' if grew else ''}; goal "
          f">= {GOAL_RPS} requests/s with p99 <= {GOAL_P99_MS:g} ms met in {met} of "
          f"{len(run['rounds'])} rounds", flush=True)
    return ok and not grew and not run["traceback"]


if __name__ == "__main__":
    sys.exit(main())

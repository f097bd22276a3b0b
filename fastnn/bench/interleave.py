"""Engines taking turns, round by round (``fastnn bench``'s default way of measuring).

The machines we measure on are VMs whose speed drifts with nothing else running: one process
training mlp-128 for two minutes went 330k -> 440k -> 330k samples/s in phases of tens of
seconds. Measured one after another, two engines can land in different phases, and their ratio
then follows the phase, not the engines. So every engine of one network (all its batch sizes)
is started at once, warmed up, and left waiting; the parent then asks each in turn for one
timed round, rotating who goes first. Every engine sees every phase, and the ratio of medians
compares like with like. Only one engine computes at any time.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time

from .worker import MARK

# After its turn an engine's threads may spin before they sleep (OpenBLAS's for up to ~0.1 s,
# OpenMP's briefly), which would slow the next engine. So the next turn waits until the last
# engine's process used no CPU over a whole poll interval (at most QUIET_MAX_S).
QUIET_POLL_S, QUIET_MAX_S = 0.03, 2.0


class Served:
    """One measuring worker in ``serve`` mode, driven over its stdin/stdout."""

    def __init__(self, spec, env, timeout):
        self.spec, self.timeout = spec, timeout
        self.err = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, "-m", "fastnn.bench.compare", "--worker",
               json.dumps({**spec, "mode": "serve"})]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.error = None
        self.times = []

    def _pump(self):
        for line in self.proc.stdout:
            if line.startswith(MARK):
                self.lines.put(json.loads(line[len(MARK):]))
        self.lines.put(None)                      # end of output: the process has exited

    def _reply(self):
        """The worker's next message, or None (and ``error`` set) if it died or hung."""
        try:
            msg = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            self.proc.kill()
            msg, self.error = None, f"timed out after {self.timeout} s"
        if msg is None and self.error is None:
            self.error = self._failure()
        return msg

    def _failure(self):
        code = self.proc.wait()
        self.err.seek(0)
        tail = [t.strip() for t in self.err.read().splitlines()[-6:] if t.strip()]
        errors = [t for t in tail if t.split(":")[0].endswith(("Error", "Exception"))]
        return (errors or tail or [f"exit {code}"])[-1]

    def _send(self, text):
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            self.error = self.error or self._failure()
            return False

    def cpu_ticks(self):
        """CPU time used so far by every thread of the worker (clock ticks), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])     # utime + stime
        except (OSError, IndexError, ValueError):
            return None

    def wait_quiet(self):
        """Return once the worker has used no CPU for a poll interval (see QUIET_POLL_S)."""
        deadline = time.monotonic() + QUIET_MAX_S
        last = self.cpu_ticks()
        while time.monotonic() < deadline:
            time.sleep(QUIET_POLL_S)
            now = self.cpu_ticks()
            if now is None or now == last:
                return
            last = now

    def ready(self):
        return self._reply() is not None

    def round(self, epoch):
        if self.error is None and self._send(f"round {epoch}"):
            msg = self._reply()
            if msg is not None:
                self.times.append(msg["round_seconds"])

    def finish(self):
        """The worker's final JSON (as the sequential worker prints it), or {"error": ...}."""
        res = None
        if self.error is None and self._send("finish"):
            res = self._reply()
        self.proc.wait()
        self.err.close()
        return res if res is not None else {"error": self.error}


def measure_group(specs, envs, rounds, timeout, log):
    """Start every spec's worker (one at a time, so first-call times stay their own), run
    ``rounds`` rounds taking turns, then collect each worker's final result, in spec order."""
    workers = []
    for spec, env in zip(specs, envs, strict=True):
        w = Served(spec, env, timeout)
        if not w.ready():
            log(f"    {spec['network']}/b{spec['batch']} {spec['engine']} failed: {w.error}")
        workers.append(w)
    for r in range(1, rounds + 1):
        live = [w for w in workers if w.error is None]
        if not live:
            break
        k = (r - 1) % len(live)
        for w in live[k:] + live[:k]:
            w.round(r)
            w.wait_quiet()
        log(f"    round {r}/{rounds}: " + ", ".join(
            f"{w.spec['engine']}/b{w.spec['batch']} {w.spec['samples'] / w.times[-1]:,.0f}"
            for w in live if w.error is None and len(w.times) == r))
    return [w.finish() for w in workers]


def group_by_network(configs):
    """[(name, [batch, ...])] in first-seen order: the batch sizes of a network share a turn."""
    groups = {}
    for name, bs in configs:
        groups.setdefault(name, []).append(bs)
    return list(groups.items())


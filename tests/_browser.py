"""Helpers for the real-browser and real-server tests of ``fastnn serve``.

- ``require_chromium()``: the browser, or a skip with a reason; under CI (env CI set) a missing
  browser or playwright is a failure, never a skip.
- ``start_server()`` / ``stop_server()``: a real ``fastnn serve`` process on 127.0.0.1.
- ``digit_strokes()``: pen strokes that retrace an MNIST image along its centre line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser test must run there; install Debian's "
                    "chromium and playwright, see .ci/run)")
    pytest.skip(reason)


def require_chromium() -> str:
    """Path of a Chromium executable with playwright importable; skip (fail under CI) if not."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright for Python is not installed (pip install playwright)")
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    _missing("no Chromium executable on PATH (apt-get install -y chromium)")
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_path, *extra, cwd=None, timeout=60.0):
    """(process, base URL) of ``python -m fastnn serve model_path`` once /healthz answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnn", "serve", str(model_path), "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fastnn serve exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"fastnn serve did not answer on {url} within {timeout} s")


def stop_server(proc) -> str:
    """Stop the server (Ctrl-C, then kill) and return what it printed."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ""


def _thin(img: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image: its one-pixel-wide skeleton."""
    sk = np.pad(img.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(sk, -dy, 0), -dx, 1) for dy, dx in
                 ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))]
            n = sum(q.astype(int) for q in p)
            a = sum((~p[i] & p[(i + 1) % 8]).astype(int) for i in range(8))
            if step == 0:
                c = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                c = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            remove = sk & (n >= 2) & (n <= 6) & (a == 1) & c
            if remove.any():
                sk &= ~remove
                changed = True
        if not changed:
            return sk[1:-1, 1:-1]


def digit_strokes(image28: np.ndarray, scale: float = 10.0, threshold: float = 0.5):
    """Pen strokes (lists of (x, y) points in pad pixels) that retrace an MNIST digit along
    its skeleton: each walks unvisited links between neighbouring skeleton pixels, starting
    at line ends where there are any; an isolated pixel becomes a dot."""
    sk = _thin(np.asarray(image28).reshape(28, 28) >= threshold)
    pixels = {(int(r), int(c)) for r, c in zip(*np.nonzero(sk), strict=True)}
    links = {p: {(p[0] + dr, p[1] + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                 if (dr or dc) and (p[0] + dr, p[1] + dc) in pixels} for p in pixels}
    at = lambda p: ((p[1] + 0.5) * scale, (p[0] + 0.5) * scale)   # noqa: E731
    strokes = [[at(p)] for p in sorted(pixels) if not links[p]]
    for p in sorted(pixels, key=lambda q: (len(links[q]) != 1, q)):   # line ends first
        while links[p]:
            path, q = [at(p)], p
            while links[q]:
                nxt = min(links[q])
                links[q].discard(nxt)
                links[nxt].discard(q)
                path.append(at(nxt))
                q = nxt
            strokes.append(_smooth(path))
    return strokes


def _smooth(path):
    """Average each inner point with its neighbours: pixel staircases become pen-like curves."""
    if len(path) < 3:
        return path
    pts = np.array(path)
    pts[1:-1] = (pts[:-2] + 2 * pts[1:-1] + pts[2:]) / 4
    return [tuple(p) for p in pts.tolist()]

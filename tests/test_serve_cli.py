"""``fastnn serve`` on the command line, and a real server process under a small load."""

import http.client
import json
import os
import threading

import numpy as np
import pytest

import fastnn as fn
import fastnn.serve as serve
from fastnn.cli import main
from fastnn.serve import default_model

from ._browser import start_server, stop_server

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def model_file(tmp_path):
    m = fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(10, "softmax")], input_size=784, seed=0)
    m.save(tmp_path / "m.fnn")
    return tmp_path / "m.fnn"


@pytest.fixture
def fake_uvicorn(monkeypatch):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_missing_extra_names_it(monkeypatch, capsys, model_file):
    monkeypatch.setitem(serve.NEEDS, "starlette", "starlette_is_not_installed_here")
    assert main(["serve", str(model_file)]) == 1
    err = capsys.readouterr().err
    assert "pip install 'fastnn[serve]'" in err and "missing: starlette" in err


def test_serve_a_model_file_on_loopback(fake_uvicorn, capsys, model_file):
    assert main(["serve", str(model_file), "--port", "8123"]) == 0
    (app, kw), = fake_uvicorn
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123
    assert app.state.predictor.model.input_size == 784
    out = capsys.readouterr().out
    assert f"model file {model_file}" in out and "http://127.0.0.1:8123/" in out
    assert "warning" not in out


def test_other_hosts_are_warned_about_and_workers_load_the_file(capsys, model_file,
                                                               monkeypatch):
    import socket

    import uvicorn.supervisors

    started = []

    class FakeSupervisor:
        def __init__(self, config, sockets):
            started.append((config, sockets))

        def run(self):
            pass

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", FakeSupervisor)
    for name in ("FASTNN_SERVE_MODEL", "FASTNN_SERVE_SOURCE", "FASTNN_SERVE_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", str(model_file), "--host", "0.0.0.0", "--port", "0",
                 "--workers", "2"]) == 0
    (config, (sock,)), = started
    try:
        assert config.app == "fastnn.serve.app:app_from_env" and config.workers == 2
        # without this every keep-alive response waits ~40 ms for a delayed ACK
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()
    assert "reachable from other machines" in capsys.readouterr().out
    from fastnn.serve.app import app_from_env
    threads = fn.get_num_threads()
    try:
        app = app_from_env()                 # what each worker process builds
        assert fn.get_num_threads() == max(1, (os.cpu_count() or 1) // 2)
    finally:
        fn.set_num_threads(threads)
    assert app.state.predictor.model.net.n_params == fn.load(model_file).net.n_params


def test_bad_arguments(capsys, tmp_path):
    (tmp_path / "junk.fnn").write_bytes(b"junk")
    assert main(["serve", str(tmp_path / "junk.fnn")]) == 1
    assert "fastnn: error:" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 1
    assert "--port must be in 0..65535" in capsys.readouterr().err


def test_without_a_model_the_cached_one_is_used_and_named(fake_uvicorn, capsys, model_file,
                                                          monkeypatch):
    monkeypatch.setattr(default_model, "cache_path", lambda: model_file)
    assert main(["serve"]) == 0
    assert f"loaded the cached digits-16 model {model_file}" in capsys.readouterr().out


@pytest.mark.slow
def test_without_a_cached_model_one_is_trained_on_mnist(tmp_path):
    said = []
    path = tmp_path / "models" / "digits-16.fnn"
    model, where, how = default_model.load_or_train(path, say=said.append)
    assert where == path and path.exists() and "training digits-16" in said[0]
    assert how.startswith("trained digits-16 on MNIST") and "test accuracy" in how
    accuracy = float(how.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 93 and list(model.net.sizes) == [784, 16, 16, 10]
    _, _, again = default_model.load_or_train(path)
    assert again.startswith("loaded the cached")


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def _hammer(url, body, n_requests, n_threads=8):
    host, port = url.removeprefix("http://").split(":")
    statuses, lock = [], threading.Lock()

    def worker(count):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        for _ in range(count):
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            with lock:
                statuses.append(r.status)
        conn.close()

    threads = [threading.Thread(target=worker, args=(n_requests // n_threads,))
               for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_a_real_server_under_a_small_load(model_file):
    """8 connections x 200 requests: no errors, no growth of the server's memory, clean stop."""
    proc, url = start_server(model_file)
    try:
        x = np.random.default_rng(0).uniform(0, 1, 784).round(3)
        body = json.dumps({"pixels": x.tolist()})
        assert set(_hammer(url, body, 200)) == {200}            # warm-up
        before = _rss_kib(proc.pid)
        statuses = _hammer(url, body, 200)
        growth = _rss_kib(proc.pid) - before
        assert len(statuses) == 200 and set(statuses) == {200}
        assert growth < 4096, f"server RSS grew by {growth} KiB over 200 requests"
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        conn.request("POST", "/predict", b"{", {"Content-Type": "application/json"})
        bad = conn.getresponse()
        assert bad.status == 400 and "malformed JSON" in json.loads(bad.read())["error"]
        assert set(_hammer(url, body, 16)) == {200}              # still serving
    finally:
        printed = stop_server(proc)
    assert proc.returncode == 0 and "Traceback" not in printed, printed

"""``fastnn serve``: a draw-a-digit page and an inference API (needs ``fastnn[serve]``).

    from fastnn.serve import create_app      # an ASGI app for any fastnn model
    app = create_app(fastnn.load("digits.fnn"))
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os

EXTRA_HINT = "pip install 'fastnn[serve]'"
NEEDS = {"starlette": "starlette", "uvicorn": "uvicorn", "python-multipart": "python_multipart",
         "pillow": "PIL"}


def missing_packages() -> list[str]:
    return [pkg for pkg, module in NEEDS.items() if importlib.util.find_spec(module) is None]


def require() -> None:
    """Raise a RuntimeError naming the extra when a serving package is not installed."""
    missing = missing_packages()
    if missing:
        raise RuntimeError(f"fastnn serve needs the serve extra: {EXTRA_HINT} "
                           f"(missing: {', '.join(missing)})")


def create_app(model, source: str = ""):
    """The Starlette app serving ``model``; see fastnn/serve/app.py."""
    require()
    from .app import create_app as _create

    return _create(model, source)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(model_path=None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        say=print) -> int:
    """Serve a model file (or the default digits-16) until Ctrl-C; what ``fastnn serve`` runs."""
    require()
    import uvicorn

    from ..io import load
    from .app import MODEL_ENV, SOURCE_ENV, THREADS_ENV
    from .default_model import load_or_train

    if model_path is None:
        model, model_path, source = load_or_train(say=say)
    else:
        model, source = load(model_path), f"model file {model_path}"
    say(f"fastnn serve: {source}")
    say(f"fastnn serve: {model!r}; open http://{host}:{port}/ (Ctrl-C stops)")
    if importlib.util.find_spec("httptools") is None:
        say("fastnn serve: uvicorn parses HTTP in pure Python (h11) here; pip install httptools "
            "for about twice the requests per second")
    if not _is_loopback(host):
        say(f"fastnn serve: warning: listening on {host}, reachable from other machines; "
            "the API has no authentication")
    options = dict(host=host, port=port, access_log=False, log_level="warning")
    if workers > 1:   # worker processes load the same file by name
        os.environ[MODEL_ENV], os.environ[SOURCE_ENV] = os.fspath(model_path), source
        os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // workers))
        _run_workers(uvicorn.Config("fastnn.serve.app:app_from_env", factory=True,
                                    workers=workers, **options))
    else:
        uvicorn.run(create_app(model, source), **options)
    return 0


def _run_workers(config) -> None:
    """uvicorn.run(..., workers=n), with TCP_NODELAY on the shared listening socket.

    uvicorn binds that socket with protocol 0, so asyncio does not switch Nagle's algorithm
    off on the connections it accepts; a response written in two parts then waits for the
    client's delayed ACK: ~40 ms per request (measured: 170 requests/s instead of 2,000;
    uvicorn issue #3149). Accepted sockets inherit TCP_NODELAY from the listener on Linux.
    """
    import socket

    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass

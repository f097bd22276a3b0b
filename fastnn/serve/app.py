"""The ASGI app of ``fastnn serve``: the draw-a-digit page and the inference API.

Every bad request ends in a 4xx JSON body ``{"error": "..."}`` that names the problem; any
other failure is a 500 with no traceback in the response. Work per request is bounded (body
1 MB, batch 256, images 16 M pixels), so requests are handled on the event loop directly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..datasets.preprocessing import image_to_mnist
from . import model_view
from .inputs import (
    IMAGE_FIELD,
    MAX_BODY_BYTES,
    ApiError,
    check_content_type,
    parse_json,
    parse_predict,
)

STATIC = Path(__file__).with_name("static")
IMAGE_INPUTS = 784
MODEL_ENV, SOURCE_ENV = "FASTNN_SERVE_MODEL", "FASTNN_SERVE_SOURCE"
THREADS_ENV = "FASTNN_SERVE_THREADS"      # per worker process: the CPUs shared out
log = logging.getLogger("fastnn.serve")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes, by Content-Length up front and by
    counting while the body streams in (chunked uploads declare no length)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    def _too_large(self) -> ApiError:
        return ApiError(413, f"request body is over the limit of {self.limit:,} bytes (1 MB)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            err = self._too_large() if length.isdigit() else ApiError(400, "bad Content-Length")
            response = JSONResponse({"error": err.message}, err.status,
                                    headers={"Connection": "close"})
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._too_large()
            return message

        await self.app(scope, counted, send)


class Predictor:
    """The model behind the routes; one per process."""

    def __init__(self, model, source: str = ""):
        self.model = model
        self.source = source
        self.n_inputs = model.input_size
        self.images = model.input_size == IMAGE_INPUTS
        self.classify = model.output_size > 1
        self.forward = model_view.Forward(model)
        self._weights = None

    def one(self, x: np.ndarray) -> dict:
        outs = self.forward(x)
        y = outs[-1]
        cls = int(np.argmax(y)) if self.classify else int(y[0] > 0.5)
        return {"class": cls, "probabilities": model_view.rounded(y),
                "activations": [model_view.rounded(a) for a in outs]}

    def batch(self, x: np.ndarray) -> dict:
        y = self.model.predict(x)
        cls = y.argmax(axis=1) if self.classify else (y[:, 0] > 0.5).astype(np.int64)
        return {"classes": cls.tolist(), "probabilities": model_view.rounded(y)}

    def weights(self) -> dict:
        if self._weights is None:
            self._weights = model_view.page_weights(self.model)
        return self._weights

    async def predict(self, request):
        kind = check_content_type(request.headers.get("content-type", ""))
        if kind == "json":
            body = await request.body()
            # JSON true/false become Python bools, which NumPy would take as 1 and 0 unless
            # every value's type is checked; that check is only needed if they can be there.
            strict = b"true" in body or b"false" in body
            mode, x = parse_predict(parse_json(body), self.n_inputs, self.images,
                                    self.model.dtype, strict)
            return JSONResponse(self.one(x) if mode == "one" else self.batch(x))
        return JSONResponse(await self._predict_image(request))

    async def _predict_image(self, request) -> dict:
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get(IMAGE_FIELD)
            if upload is None or isinstance(upload, str):
                raise ApiError(422, f"the form has no file field '{IMAGE_FIELD}': upload the "
                                    f"PNG as {IMAGE_FIELD}=@digit.png")
            data = await upload.read()
        if not self.images:
            raise ApiError(422, f"image uploads need a model with {IMAGE_INPUTS} inputs "
                                f"(28x28 pixels); this model has {self.n_inputs}")
        try:
            grid = image_to_mnist(data).ravel()
        except ValueError as exc:
            raise ApiError(422, f"image: {exc}") from None
        result = self.one(grid.astype(self.model.dtype))
        result["input"] = model_view.rounded(grid)
        return result


async def _api_error(request, exc: ApiError):
    return JSONResponse({"error": exc.message}, exc.status)


async def _http_error(request, exc: HTTPException):
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)


async def _server_error(request, exc: Exception):
    log.exception("fastnn serve: unexpected error on %s", request.url.path)
    return JSONResponse({"error": "internal server error"}, 500)


def create_app(model, source: str = "") -> Starlette:
    """The ASGI app serving ``model`` (a fastnn.Sequential)."""
    p = Predictor(model, source)

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def describe(request):
        return JSONResponse(model_view.describe(model, source))

    async def weights(request):
        return JSONResponse(p.weights())

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", index),
        Route("/predict", p.predict, methods=["POST"]),
        Route("/model", describe),
        Route("/model/weights", weights),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(BodyLimit)],
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                        Exception: _server_error})
    app.state.predictor = p
    return app


def app_from_env() -> Starlette:
    """App factory for uvicorn worker processes: the model file is named in the environment."""
    from ..io import load
    from ..threads import set_num_threads

    path = os.environ.get(MODEL_ENV)
    if not path:
        raise RuntimeError(f"{MODEL_ENV} is not set: start the server with 'fastnn serve'")
    if os.environ.get(THREADS_ENV):
        set_num_threads(int(os.environ[THREADS_ENV]))
    return create_app(load(path), os.environ.get(SOURCE_ENV, path))

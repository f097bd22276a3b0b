"""The HTTP API of ``fastnn serve`` through Starlette's test client (no network, no MNIST)."""

import io
import json

import numpy as np
import pytest

import fastnn as fn
from fastnn.datasets.preprocessing import image_to_mnist

pytest.importorskip("starlette")
pytest.importorskip("python_multipart")
Image = pytest.importorskip("PIL.Image")
testclient = pytest.importorskip("starlette.testclient")

from fastnn.serve import create_app  # noqa: E402
from fastnn.serve.inputs import MAX_BATCH, MAX_BODY_BYTES  # noqa: E402


def _digits_net(dtype="float32"):
    return fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(16, "sigmoid"),
                          fn.Dense(10, "softmax")], input_size=784, dtype=dtype, seed=0)


@pytest.fixture(scope="module")
def model():
    return _digits_net()


@pytest.fixture(scope="module")
def client(model):
    with testclient.TestClient(create_app(model, "a test model")) as c:
        yield c


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(0).uniform(0, 1, (5, 784)).astype(np.float32)


def _png(array01):
    buf = io.BytesIO()
    Image.fromarray((array01 * 255).round().astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _stroke_drawing():
    img = np.zeros((280, 280))
    img[40:240, 120:145] = 1.0        # a "1" with a flag
    img[40:70, 90:145] = 1.0
    return img


def test_healthz_and_model(client, model):
    assert client.get("/healthz").json() == {"status": "ok"}
    d = client.get("/model").json()
    assert d["sizes"] == [784, 16, 16, 10] and d["dtype"] == "float32"
    assert d["backend"] == model.backend.name and d["fastnn_version"] == fn.__version__
    assert [lay["activation"] for lay in d["layers"]] == ["sigmoid", "sigmoid", "softmax"]
    assert d["parameters"] == model.net.n_params and d["source"] == "a test model"
    assert d["limits"] == {"max_body_bytes": MAX_BODY_BYTES, "max_batch": MAX_BATCH}


def test_predict_one_matches_the_model_and_shows_every_layer(client, model, samples):
    x = samples[0]
    r = client.post("/predict", json={"pixels": x.tolist()})
    assert r.status_code == 200
    out = r.json()
    np.testing.assert_allclose(out["probabilities"], model.predict(x), rtol=1e-4, atol=1e-6)
    assert out["class"] == int(model.predict_classes(x))
    assert [len(a) for a in out["activations"]] == [16, 16, 10]
    h1 = 1 / (1 + np.exp(-(x.astype(np.float64) @ model.net.weights(0) + model.net.biases(0))))
    np.testing.assert_allclose(out["activations"][0], h1, rtol=1e-4, atol=1e-6)
    assert out["activations"][-1] == out["probabilities"]


def test_predict_batch(client, model, samples):
    r = client.post("/predict", json={"inputs": samples.tolist()})
    assert r.status_code == 200
    out = r.json()
    assert out["classes"] == model.predict_classes(samples).tolist()
    np.testing.assert_allclose(out["probabilities"], model.predict(samples), rtol=1e-4, atol=1e-6)
    binary = (samples[0] > 0.8).astype(int).tolist()     # short numbers: 256 fit in 1 MB
    r = client.post("/predict", json={"inputs": [binary] * MAX_BATCH})
    assert r.status_code == 200 and len(r.json()["classes"]) == MAX_BATCH


def test_png_upload_is_preprocessed_like_fastnn_predict(client, model):
    png = _png(_stroke_drawing())
    r = client.post("/predict", files={"image": ("one.png", png, "image/png")})
    assert r.status_code == 200, r.text
    out = r.json()
    expected = image_to_mnist(png).ravel()
    np.testing.assert_allclose(out["input"], expected, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"], model.predict(expected), rtol=1e-4,
                               atol=1e-6)
    dark_on_white = client.post("/predict", files={"image": ("p.png", _png(1 - _stroke_drawing()))})
    np.testing.assert_allclose(dark_on_white.json()["input"], expected, atol=1e-6)


def _json(doc):
    return json.dumps(doc).encode(), "application/json"


ZEROS = [0.0] * 784
BIG_PNG = io.BytesIO()
Image.new("L", (5000, 5000)).save(BIG_PNG, "PNG")
CASES = {
    # name: (body, content type, status, words the error must contain)
    "malformed JSON": (b'{"pixels": [0, 1,', "application/json", 400, "malformed JSON"),
    "empty body": (b"", "application/json", 400, "empty body"),
    "not UTF-8": (b'{"pixels": "\xff"}', "application/json", 400, "not UTF-8"),
    "wrong content type": (b"0,1,2", "text/csv", 415, "unsupported content type 'text/csv'"),
    "no content type": (b'{"pixels": []}', "", 415, "no Content-Type header"),
    "too short": (*_json({"pixels": ZEROS[:783]}), 422, "pixels must have 784 numbers, got 783"),
    "too long": (*_json({"pixels": ZEROS + [0]}), 422, "must have 784 numbers, got 785"),
    "NaN": (b'{"pixels": [0, NaN' + b", 0" * 782 + b"]}", "application/json", 422,
            "pixels[1] is NaN"),
    "Infinity": (b'{"pixels": [-Infinity' + b", 0" * 783 + b"]}", "application/json", 422,
                 "pixels[0] is infinite"),
    "overflowing float": (b'{"pixels": [1e999' + b", 0" * 783 + b"]}", "application/json", 422,
                          "pixels[0] is infinite"),
    "string": (*_json({"pixels": ["0.5"] + ZEROS[1:]}), 422, 'pixels[0] is not a number: "0.5"'),
    "boolean": (*_json({"pixels": ZEROS[:5] + [True] + ZEROS[6:]}), 422,
                "pixels[5] is not a number: true"),
    "null": (*_json({"pixels": ZEROS[:9] + [None] + ZEROS[10:]}), 422,
             "pixels[9] is not a number: null"),
    "nested": (*_json({"pixels": [[0.1, 0.2]] + ZEROS[1:]}), 422, "pixels[0] is not a number"),
    "0..255 pixels": (*_json({"pixels": ZEROS[:3] + [255] + ZEROS[4:]}), 422,
                      "pixels[3] = 255 is outside 0..1"),
    "huge integer": (*_json({"pixels": [10**30] + ZEROS[1:]}), 422,
                     "pixels[0] = 1000000000000000000000000000000 is outside 0..1"),
    "400-digit integer": (*_json({"pixels": ZEROS[:7] + [10**400] + ZEROS[8:]}), 422,
                          "pixels[7] = 1000000000000000000000000000000000000... is too large "
                          "for the model's float32"),
    "not a list": (*_json({"pixels": "0 0 0"}), 422, "pixels must be a list of 784 numbers"),
    "neither key": (*_json({"image": ZEROS}), 422, 'either "pixels"'),
    "both keys": (*_json({"pixels": ZEROS, "inputs": [ZEROS]}), 422, 'either "pixels"'),
    "JSON list": (*_json([ZEROS]), 422, 'either "pixels"'),
    "empty batch": (*_json({"inputs": []}), 422, "inputs must be a non-empty list"),
    "bad row in batch": (*_json({"inputs": [ZEROS, ZEROS[:10]]}), 422,
                         "inputs[1] must have 784 numbers, got 10"),
    "batch over limit": (*_json({"inputs": [[0] * 784] * (MAX_BATCH + 1)}), 413,
                         f"more than the limit of {MAX_BATCH}"),
    "body over 1 MB": (b" " * (MAX_BODY_BYTES + 1), "application/json", 413,
                       "request body is over the limit"),
}
FILE_CASES = {
    "unreadable image": ({"image": ("d.png", b"this is not a png", "image/png")}, 422,
                         "image: not a PNG image"),
    "JPEG image": ({"image": ("d.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 50, "image/jpeg")}, 422,
                   "image: not a PNG image"),
    "huge image": ({"image": ("big.png", BIG_PNG.getvalue(), "image/png")}, 422,
                   "image: 5000x5000 pixels, more than the 16,777,216"),
    "no image field": ({"picture": ("d.png", b"x", "image/png")}, 422,
                       "no file field 'image'"),
}


def _still_serving(client):
    assert client.get("/healthz").status_code == 200
    assert client.post("/predict", json={"pixels": ZEROS}).status_code == 200


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_json_requests_get_a_4xx_naming_the_problem(client, name):
    body, ctype, status, words = CASES[name]
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/predict", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"] and "Traceback" not in r.text
    _still_serving(client)


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_uploads_get_a_4xx_naming_the_problem(client, name):
    files, status, words = FILE_CASES[name]
    r = client.post("/predict", files=files)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    _still_serving(client)


def test_a_chunked_body_over_1_mb_is_cut_off(client):
    def chunks():                       # no Content-Length: the limit is counted as it streams
        for _ in range(20):
            yield b" " * 100_000

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    _still_serving(client)


def test_broken_multipart_wrong_method_and_unknown_path(client):
    r = client.post("/predict", content=b"--x\r\nnonsense",
                    headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["error"]
    assert client.get("/predict").status_code == 405
    r = client.get("/nothing-here")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}


def test_an_unexpected_failure_is_a_500_without_traceback(model):
    app = create_app(model)

    def broken(x):
        raise ZeroDivisionError("secret internals")

    app.state.predictor.one = broken
    with testclient.TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"pixels": ZEROS})
        assert r.status_code == 500 and r.json() == {"error": "internal server error"}
        assert "secret" not in r.text and c.get("/healthz").status_code == 200


def test_other_models_get_the_api_and_a_page_that_says_what_it_needs():
    m = fn.Sequential([fn.Dense(3, "softmax")], input_size=4, seed=0)
    with testclient.TestClient(create_app(m)) as c:
        assert c.get("/model").json()["input_size"] == 4
        r = c.post("/predict", json={"pixels": [-2.5, 0, 3, 1e3]})   # any finite range
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 3
        r = c.post("/predict", json={"pixels": [1e39, 0, 0, 0]})
        assert r.status_code == 422 and "too large for the model's float32" in r.json()["error"]
        r = c.post("/predict", files={"image": ("d.png", _png(_stroke_drawing()))})
        assert r.status_code == 422 and "784 inputs" in r.json()["error"]
        page = c.get("/static/app.js").text
        assert "m.input_size !== 784" in page and "The drawing page needs a model" in page


def test_float64_model(samples):
    m = _digits_net("float64")
    with testclient.TestClient(create_app(m)) as c:
        out = c.post("/predict", json={"pixels": samples[0].tolist()}).json()
        np.testing.assert_allclose(out["probabilities"], m.predict(samples[0].astype(np.float64)),
                                   rtol=1e-5)


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        assert asset in page.text
        r = client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.text) > 500
    assert "http://" not in page.text and "https://" not in page.text       # no CDN
    w = client.get("/model/weights").json()
    assert w["shown"] == [784, 16, 16, 10] and len(w["layers"][0]["w"]) == 784 * 16

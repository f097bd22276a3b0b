"""The draw-a-digit page in a real Chromium against a real ``fastnn serve`` process.

Digits from the MNIST test set are retraced with mouse strokes along their skeletons; the
page must name them, light up different hidden neurons for each, and agree with the API.
Needs Debian's chromium and playwright (which must not download a browser of its own).
Saves a screenshot of the page; with FASTNN_WRITE_SCREENSHOT=1 it becomes docs/img/serve.png,
the README's picture (otherwise a temporary file, so a test run leaves the checkout clean).
"""

import os
from pathlib import Path

import numpy as np
import pytest

import fastnn as fn

from ._browser import digit_strokes, require_chromium, start_server, stop_server

pytestmark = pytest.mark.slow          # it trains digits-16 on MNIST
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "serve.png"
VIEWPORT = {"width": 1280, "height": 760}


@pytest.fixture(scope="module")
def chromium():
    return require_chromium()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    from fastnn.serve.default_model import train

    model, accuracy, _ = train()
    assert accuracy > 0.93
    path = tmp_path_factory.mktemp("serve") / "digits-16.fnn"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def mnist_test():
    _, (xt, yt) = fn.datasets.load_mnist(verbose=False)
    return xt, yt


def _browser(p, chromium):
    return p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])


def _settle(page):
    page.wait_for_function("document.body.dataset.idle === '1'", timeout=15000)


def _draw(page, strokes):
    page.click("#clear")
    _settle(page)
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.up()
    _settle(page)


def _hidden(page):
    return page.eval_on_selector_all(
        "#neurons circle[data-layer='1']",
        "cs => cs.map(c => [c.dataset.a, c.getAttribute('fill')])")


ASK_API = """async () => {
  const blob = await new Promise(done => document.getElementById('pad').toBlob(done, 'image/png'));
  const form = new FormData();
  form.append('image', blob, 'pad.png');
  return await (await fetch('/predict', {method: 'POST', body: form})).json();
}"""


def test_drawn_digits_are_recognised_live(chromium, digits_model, mnist_test, tmp_path):
    from playwright.sync_api import sync_playwright

    xt, yt = mnist_test
    picks = [int(np.flatnonzero(yt == d)[0]) for d in range(10)]
    proc, url = start_server(digits_model.name, cwd=digits_model.parent)
    try:
        with sync_playwright() as p:
            browser = _browser(p, chromium)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.wait_for_selector("body[data-updates]")
            _settle(page)
            assert page.get_attribute("#prediction", "data-class") == ""      # blank pad
            assert "784-16-16-10" in page.inner_text("#model-info")
            seen_hidden = [_hidden(page)]
            right, sure = [], {}
            for i in picks:
                before = int(page.get_attribute("body", "data-updates"))
                _draw(page, digit_strokes(xt[i]))
                assert int(page.get_attribute("body", "data-updates")) > before + 1   # live
                shown = page.get_attribute("#prediction", "data-class")
                right.append(shown == str(yt[i]))
                api = page.evaluate(ASK_API)          # the page shows what the API says
                assert shown == str(api["class"])
                sure[i] = api["probabilities"][api["class"]] if shown == str(yt[i]) else 0
                assert page.text_content(f"#prob-{api['class']}").endswith("%")
                assert page.get_attribute(f"#neurons circle[data-layer='3'][data-unit='{shown}']",
                                          "class") == "neuron win"
                assert page.locator("#lines line").count() > 100
                seen_hidden.append(_hidden(page))
            assert sum(right) >= 8, f"page named {sum(right)} of {len(picks)} digits right"
            distinct = {tuple(a for a, _ in h) for h in seen_hidden}
            assert len(distinct) == len(seen_hidden), "hidden neurons did not change"
            assert len({tuple(f for _, f in h) for h in seen_hidden}) > len(picks) // 2
            best = max((i for i in picks if yt[i] != 1), key=sure.get)   # a clear picture
            _draw(page, digit_strokes(xt[best]))
            shot = (README_SCREENSHOT if os.environ.get("FASTNN_WRITE_SCREENSHOT") == "1"
                    else tmp_path / "serve.png")
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            page.click("#tab-weights")
            assert page.locator("#weights-grid canvas").count() == 16
            assert page.is_visible("#weights-grid") and not page.is_visible("#net")
            browser.close()
    finally:
        printed = stop_server(proc)
    assert "Traceback" not in printed, printed


def test_touch_draws_and_other_models_are_told_what_is_needed(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    digits = fn.Sequential([fn.Dense(16, "sigmoid"), fn.Dense(10, "softmax")], input_size=784,
                           seed=0)
    digits.save(tmp_path / "d.fnn")
    other = fn.Sequential([fn.Dense(3, "softmax")], input_size=4, seed=0)
    other.save(tmp_path / "o.fnn")
    with sync_playwright() as p:
        browser = _browser(p, chromium)
        proc, url = start_server(tmp_path / "d.fnn")
        try:
            page = browser.new_page(viewport=VIEWPORT, has_touch=True)
            page.goto(url)
            page.wait_for_selector("body[data-updates]")
            box = page.locator("#pad").bounding_box()
            page.touchscreen.tap(box["x"] + 140, box["y"] + 140)
            _settle(page)
            assert page.get_attribute("#prediction", "data-class") != ""
        finally:
            stop_server(proc)
        proc, url = start_server(tmp_path / "o.fnn")
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.wait_for_selector("#needs:not([hidden])")
            text = page.inner_text("#needs")
            assert "takes 4 inputs" in text and "784 inputs" in text
            assert not page.is_visible("#pad")
        finally:
            stop_server(proc)
        browser.close()

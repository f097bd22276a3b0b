"""MNIST-style preprocessing of drawings and PNG files (fastnn.datasets.preprocessing)."""

import io

import numpy as np
import pytest

from fastnn.datasets.preprocessing import MAX_IMAGE_PIXELS, image_to_mnist, mnist_style

Image = pytest.importorskip("PIL.Image")


def _centre_of_mass(img):
    m = img.sum()
    rows = img.sum(axis=1) @ (np.arange(img.shape[0]) + 0.5) / m
    cols = img.sum(axis=0) @ (np.arange(img.shape[1]) + 0.5) / m
    return rows, cols


def _ink_box(img, threshold=0.1):
    rows = np.flatnonzero((img >= threshold).any(axis=1))
    cols = np.flatnonzero((img >= threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _drawing(shape=(280, 280), top=40, left=60, height=180, width=40, arm=100):
    img = np.zeros(shape)
    img[top:top + height, left:left + width] = 1.0
    img[top:top + 20, left:left + arm] = 1.0             # an uneven shape: a "7" mirrored
    return img


def _png(array01, mode="L"):
    buf = io.BytesIO()
    Image.fromarray((np.clip(array01, 0, 1) * 255).round().astype(np.uint8), mode).save(buf, "PNG")
    return buf.getvalue()


def test_box_is_scaled_to_20_and_centred_by_mass():
    out = mnist_style(_drawing())
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert max(_ink_box(out)) == 20
    cy, cx = _centre_of_mass(out)
    assert abs(cy - 14.5) <= 0.5 and abs(cx - 14.5) <= 0.5


def test_a_lopsided_digit_is_shifted_only_as_far_as_the_frame_allows():
    img = _drawing(width=20, arm=180)                    # mass far left in a 20x20 box
    out = mnist_style(img)
    assert max(_ink_box(out)) == 20
    assert out[:, -1].max() > 0 and out[:, 0].max() == 0   # pushed right up to the edge
    np.testing.assert_allclose(out.sum(), mnist_style(np.pad(img, 50)).sum(), rtol=1e-6)


def test_aspect_ratio_is_kept():
    img = np.zeros((300, 300))
    img[50:250, 100:150] = 1.0                           # 200 x 50 -> 20 x 5
    assert _ink_box(mnist_style(img)) == (20, 5)


def test_position_and_size_on_the_pad_do_not_matter():
    a = mnist_style(_drawing(top=10, left=10))
    b = mnist_style(_drawing(top=90, left=150))
    np.testing.assert_array_equal(a, b)
    big = np.kron(_drawing(), np.ones((2, 2)))           # the same drawing on a 560 px pad
    np.testing.assert_allclose(mnist_style(big), a, atol=1e-6)


def test_grey_levels_come_from_area_averaging():
    img = np.zeros((100, 100))
    img[10:90, 50:53] = 1.0                              # a "T": 3 px strokes in an 80 px box
    img[10:13, 10:90] = 1.0
    out = mnist_style(img)
    greys = out[(out > 0) & (out < 1)]
    assert greys.size >= 20 and np.isclose(greys, 0.75).any()    # 3 px -> 0.75 of a pixel
    np.testing.assert_allclose(out.sum(), 471 * (20 / 80) ** 2, rtol=1e-5)   # ink is conserved


def test_blank_and_bad_input():
    np.testing.assert_array_equal(mnist_style(np.zeros((50, 50))), np.zeros((28, 28)))
    with pytest.raises(ValueError, match="2-D"):
        mnist_style(np.ones(10))
    with pytest.raises(ValueError, match="NaN or inf"):
        mnist_style(np.full((5, 5), np.nan))


def test_28x28_png_is_taken_as_mnist_input():
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28))
    img[4:24, 10:16] = rng.uniform(0.2, 1.0, (20, 6))
    out = image_to_mnist(_png(img))
    np.testing.assert_array_equal(out, (img * 255).round().astype(np.uint8) / np.float32(255))


def test_dark_ink_on_white_and_transparent_pngs_match_light_on_dark():
    ink = _drawing()
    light_on_dark = image_to_mnist(_png(ink))
    assert light_on_dark.max() > 0.9
    np.testing.assert_allclose(image_to_mnist(_png(1.0 - ink)), light_on_dark, atol=1e-6)
    rgba = np.zeros(ink.shape + (4,), dtype=np.uint8)
    rgba[..., 3] = (ink * 255).astype(np.uint8)            # black ink, transparent background
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    np.testing.assert_allclose(image_to_mnist(buf.getvalue()), light_on_dark, atol=1e-6)


def test_unreadable_and_oversized_images(tmp_path):
    with pytest.raises(ValueError, match="not a PNG image"):
        image_to_mnist(b"GIF89a not really")
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match=f"{path}: "):
        image_to_mnist(path)
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG")
    with pytest.raises(ValueError, match="pixels, more than"):
        image_to_mnist(buf.getvalue())
    truncated = _png(_drawing())[:200]
    with pytest.raises(ValueError, match="damaged PNG|not a PNG"):
        image_to_mnist(truncated)


@pytest.mark.slow
def test_mnist_digits_are_left_almost_unchanged():
    import fastnn as fn

    (_, _), (xt, _) = fn.datasets.load_mnist(verbose=False)
    again = np.stack([mnist_style(a.reshape(28, 28)) for a in xt[:2000]]).reshape(-1, 784)
    # MNIST's own digits are already normalised: doing it again moves very little ink
    assert np.abs(again - xt[:2000]).mean() < 1e-3

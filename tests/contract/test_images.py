"""The image codec's resize modes: what a model sees of an image of another size or colour."""

import io

import numpy as np
import pytest
from PIL import Image

from contract.errors import InvalidInputError
from contract.images import decode_image


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def half_white() -> bytes:
    """96 wide, 32 high: the left half white, the right half black."""
    pixels = np.zeros((32, 96), np.uint8)
    pixels[:, :48] = 255
    return png(pixels)


def test_crop_keeps_the_centre_at_the_model_s_aspect_ratio() -> None:
    seen = decode_image(half_white(), (1, 32, 32), "crop").pixels[0]
    assert seen[:, :12].mean() > 0.9 and seen[:, -12:].mean() < 0.1  # the middle third: white, then black


def test_pad_letterboxes_the_whole_image() -> None:
    seen = decode_image(half_white(), (1, 32, 32), "pad").pixels[0]
    assert seen[:10].max() == 0 and seen[-10:].max() == 0  # black bars above and below
    assert seen[16, :12].mean() > 0.9 and seen[16, -12:].mean() < 0.1  # the whole width is there


def test_stretch_fills_the_model_s_size_and_converts_colour() -> None:
    decoded = decode_image(half_white(), (3, 28, 20), "stretch")
    assert decoded.pixels.shape == (3, 28, 20) and decoded.source == (1, 32, 96)
    assert np.allclose(decoded.pixels[0], decoded.pixels[2])  # grey made RGB


def test_none_takes_only_the_exact_shape() -> None:
    with pytest.raises(InvalidInputError, match="takes 32x32 images; got 96x32"):
        decode_image(half_white(), (1, 32, 32))
    with pytest.raises(InvalidInputError, match="RGB"):
        decode_image(png(np.zeros((32, 96), np.uint8)), (3, 32, 96))
    assert decode_image(half_white(), (1, 32, 96)).pixels.shape == (1, 32, 96)


def test_a_resize_still_refuses_images_beyond_the_pixel_limit() -> None:
    with pytest.raises(InvalidInputError, match="at most 1000 pixels"):
        decode_image(half_white(), (1, 32, 32), "crop", max_pixels=1000)

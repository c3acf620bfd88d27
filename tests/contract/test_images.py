"""The image codec's resize modes: what a model sees of an image of another size or colour."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from contract.errors import InvalidInputError
from contract.images import decode_image, encode_png


def half_white() -> bytes:
    """96 wide, 32 high: the left half white, the right half black."""
    pixels = np.zeros((32, 96), np.uint8)
    pixels[:, :48] = 255
    return encode_png(pixels)


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
        decode_image(encode_png(np.zeros((32, 96), np.uint8)), (3, 32, 96))
    assert decode_image(half_white(), (1, 32, 96)).pixels.shape == (1, 32, 96)


def test_a_resize_still_refuses_images_beyond_the_pixel_limit() -> None:
    with pytest.raises(InvalidInputError, match="at most 1000 pixels"):
        decode_image(half_white(), (1, 32, 32), "crop", max_pixels=1000)


def stored_sideways(upright: np.ndarray, file_format: str) -> bytes:
    """`upright` as a camera stores a portrait: turned a quarter, with the EXIF orientation (6) that turns it back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(buffer, format=file_format, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("file_format", ["PNG", "JPEG"])
def test_an_exif_orientation_is_applied_before_sizes_are_checked(file_format: str) -> None:
    upright = np.zeros((28, 20), np.uint8)
    upright[:8] = 255  # a white band at the top of a portrait 20 wide, 28 high
    data = stored_sideways(upright, file_format)
    assert Image.open(io.BytesIO(data)).size == (28, 20)  # stored landscape
    decoded = decode_image(data, (1, 28, 20))  # the exact shape, as viewers show it
    assert decoded.source == (1, 28, 20)
    assert np.abs(decoded.pixels[0] * 255 - upright).mean() < 4  # JPEG's error only
    with pytest.raises(InvalidInputError, match="takes 28x20 images; got 20x28"):
        decode_image(data, (1, 20, 28))
    band = decode_image(data, (1, 14, 10), "stretch").pixels[0]
    assert band[:3].mean() > 0.9 and band[6:].mean() < 0.1


def test_a_malformed_exif_block_leaves_the_image_as_stored() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 6), 200, np.uint8)).save(buffer, format="JPEG", exif=b"Exif\x00\x00garbage")
    assert decode_image(buffer.getvalue(), (1, 8, 6)).pixels.shape == (1, 8, 6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_turns_as_pillow_s_exif_transpose_does(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored = np.arange(12 * 8, dtype=np.uint8).reshape(12, 8) * 2
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    shape = (1, *expected.shape)
    assert np.array_equal(decode_image(buffer.getvalue(), shape).pixels[0], expected / np.float32(255))


def test_a_16_bit_greyscale_png_is_scaled_to_the_full_range() -> None:
    deep = np.linspace(0, 65535, 28 * 20).astype(np.uint16).reshape(28, 20)
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, format="PNG")
    pixels = decode_image(buffer.getvalue(), (1, 28, 20)).pixels[0]
    np.testing.assert_allclose(pixels, deep / 65535, atol=1 / 255)  # not clipped at 255 of 65535
    assert decode_image(buffer.getvalue(), (3, 14, 10), "stretch").pixels.max() > 0.9


@pytest.mark.parametrize(
    "data, named",
    [
        (b"", "an empty file"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "a HEIF/HEIC image"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "an AVIF image"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "a WebP image"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF image"),
        (b"BM\x1e\x00\x00\x00", "a BMP image"),
        (b"II*\x00\x08\x00\x00\x00", "a TIFF image"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "a damaged or truncated PNG or JPEG"),
        (b"%PDF-1.4", "not an image format this service recognizes"),
    ],
)
def test_a_file_of_another_format_is_named_in_the_error(data: bytes, named: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        decode_image(data, (1, 28, 28), "crop")
    assert str(refused.value.message) == f"send a PNG or JPEG image; this is {named}"


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)  # 10^10 grey pixels, no pixel data
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    for resize in ("none", "crop"):
        with pytest.raises(InvalidInputError, match="image too large"):
            decode_image(bomb, (1, 28, 28), resize)

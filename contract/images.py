"""Pixels <-> PNG with numpy and Pillow only, and pictures tiled into grids (the service's image codecs; the
training reports draw with the same)."""

import io
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from contract.errors import InvalidInputError


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1], (..., C, H, W) -> uint8 (..., H, W, C)."""
    pixels = np.clip(np.nan_to_num(images) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.moveaxis(pixels, -3, -1)


def tile(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (C, rows*(H+p)+p, columns*(W+p)+p) picture, grey gaps."""
    n, c, h, w = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = np.full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), 0.5, np.float32)
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        canvas[:, top : top + h, left : left + w] = image
    return canvas


def encode_png(pixels: np.ndarray) -> bytes:
    """8-bit pixels, (H, W) grey or (H, W, 3) RGB -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    """One (C, H, W) image in [0, 1] -> PNG bytes (grey for C = 1, RGB for C = 3)."""
    pixels = to_uint8(image)
    return encode_png(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


# Pillow modes by the channels they carry once alpha is dropped; the "I" modes are 16-bit greyscale PNGs.
MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "RGB": 3, "RGBA": 3, "P": 3, "PA": 3, "CMYK": 3, "YCbCr": 3}
MODE_CHANNELS |= dict.fromkeys(("I;16", "I;16B", "I;16L", "I"), 1)
CHANNEL_KINDS = {1: "single-channel (greyscale)", 3: "RGB"}
# none: as sent; native (size-free models): as sent, padded to the next multiple of the stride; stretch, crop, pad:
# converted to the model's training size.
Resize = Literal["none", "native", "stretch", "crop", "pad"]
RESIZE_MODES: tuple[Resize, ...] = ("none", "native", "stretch", "crop", "pad")
# EXIF orientation: how the stored pixels turn to be seen upright (cameras store portraits sideways); 5 to 8 swap
# width and height.
ORIENTATION, SIDEWAYS = 0x0112, {5, 6, 7, 8}


class DecodedImage(NamedTuple):
    pixels: np.ndarray  # (C, H, W) float32 in [0, 1], as the model takes it
    source: tuple[int, int, int]  # (C, H, W) as the file was, upright


# Formats people send that are not taken, by their first bytes (HEIF's brand follows a 4-byte box size).
OTHER_FORMATS = {b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"\x00\x00\x01\x00": "ICO"}
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif"}


def format_name(data: bytes) -> str:
    """What the bytes look like, for the error message of a file that Pillow would not open as PNG or JPEG."""
    if not data:
        return "an empty file"
    if data.startswith((b"\x89PNG", b"\xff\xd8")):
        return "a damaged or truncated PNG or JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "an AVIF image" if data[8:12] == b"avif" else "a HEIF/HEIC image"
    found = next((name for magic, name in OTHER_FORMATS.items() if data.startswith(magic)), None)
    return f"a {found} image" if found else "not an image format this service recognizes"


def open_image(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
    except Image.DecompressionBombError as error:
        raise InvalidInputError(f"image too large: {error}") from None
    except (OSError, ValueError):  # Pillow names the buffer object, which says nothing to the sender
        raise InvalidInputError(f"send a PNG or JPEG image; this is {format_name(data)}") from None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 to 8 (1: as stored), from what Pillow has parsed so far: a JPEG's header, a PNG's
    chunks before its pixels. Asking Pillow for more would decode a PNG's pixels before their size is checked."""
    return image.getexif().get(ORIENTATION, 1) if "exif" in image.info else 1


def eight_bit(image: Image.Image) -> Image.Image:
    """A loaded 16-bit greyscale image scaled to 8 bits (Pillow's own conversion clips it at 255 instead)."""
    if not image.mode.startswith("I"):
        return image
    return Image.fromarray((np.clip(np.asarray(image, np.int64), 0, 65535) >> 8).astype(np.uint8))


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the image as viewers show it, from its header alone: no pixel is decoded."""
    image = open_image(data)
    return image.size[::-1] if exif_orientation(image) in SIDEWAYS else image.size


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """The loaded image turned as its EXIF orientation (exif_orientation's, read before loading) says viewers show
    it."""
    return image if orientation == 1 else ImageOps.exif_transpose(image)


def sides_that_work(width: int, height: int, stride: int) -> str:
    """The sizes nearest to width x height whose sides are multiples of the stride, for an error message."""
    down = (width // stride * stride, height // stride * stride)
    up = (-(-width // stride) * stride, -(-height // stride) * stride)
    nearest = [f"{w}x{h}" for w, h in (down, up) if min(w, h) > 0]
    return " or ".join(dict.fromkeys(nearest))


def check_size(seen: tuple[int, int], image_shape: tuple[int, int, int], resize: Resize, stride: int | None) -> None:
    """What `resize` asks of the upright (width, height) the header says, refused before any pixel is decoded."""
    width, height = seen
    if resize == "native" and stride is None:
        raise InvalidInputError(
            f"?resize=native is for size-free models; this one takes {image_shape[2]}x{image_shape[1]} images only"
        )
    if resize != "none":
        return
    if stride is None and seen != (image_shape[2], image_shape[1]):
        raise InvalidInputError(
            f"the model takes {image_shape[2]}x{image_shape[1]} images; got {width}x{height} "
            "(?resize=stretch, crop or pad converts other sizes)"
        )
    if stride is not None and (width % stride or height % stride):
        raise InvalidInputError(
            f"the model takes images whose sides are multiples of {stride}; got {width}x{height}: the nearest sizes "
            f"that work are {sides_that_work(width, height, stride)} (?resize=native pads to the next one; stretch, "
            "crop or pad convert to the training size)"
        )


def decode_image(
    data: bytes,
    image_shape: tuple[int, int, int],
    resize: Resize = "none",
    max_pixels: int = 4096 * 4096,
    stride: int | None = None,
) -> DecodedImage:
    """PNG/JPEG bytes -> (C, H, W) float32 pixels in [0, 1], as the model takes them.

    A model of one size (`stride` None) takes `image_shape`: `resize` "none" takes only that size and colour;
    "stretch" resizes to it, "crop" cuts the centre to its aspect ratio first, "pad" letterboxes (black bars); each
    converts grey <-> RGB. A size-free model (`stride`, the pixels per code) also takes any size whose sides are
    multiples of the stride as it is ("none"), or pads the bottom and right edges up to the next multiple by
    repeating the edge pixels ("native", converting the colour too). The size is checked from the header before any
    pixel is decoded, so a decompression bomb costs nothing, and a JPEG is decoded at the smallest scale the resize
    allows; Pillow's own pixel limit stays on as a second guard. An image with an EXIF orientation is turned upright
    first, as viewers show it: sizes are the upright image's.
    """
    channels, height, width = image_shape
    image = open_image(data)
    got = MODE_CHANNELS.get(image.mode)
    if got is None:
        raise InvalidInputError(f"unsupported pixel format {image.mode}; send greyscale or RGB")
    orientation = exif_orientation(image)
    seen = image.size[::-1] if orientation in SIDEWAYS else image.size  # (width, height) upright
    if seen[0] * seen[1] > max_pixels:
        raise InvalidInputError(f"images may have at most {max_pixels} pixels; got {seen[0]}x{seen[1]}")
    check_size(seen, image_shape, resize, stride)
    if resize == "none" and got != channels:
        raise InvalidInputError(
            f"the model takes {CHANNEL_KINDS[channels]} images; got a {image.mode} image (?resize= converts it)"
        )
    mode = "L" if channels == 1 else "RGB"
    try:
        if resize in ("stretch", "crop", "pad") and image.format == "JPEG":
            # decode at 1/2, 1/4 or 1/8 scale when that is still large enough (in the stored, unturned frame)
            image.draft(mode, (height, width) if orientation in SIDEWAYS else (width, height))
        image.load()  # decodes the pixels
        image = eight_bit(upright(image, orientation))
        if image.mode != mode:
            image = image.convert(mode)
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidInputError(f"truncated or corrupt image: {error}") from None
    if resize in ("stretch", "crop", "pad"):
        image = fit(image, width, height, resize)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    if resize == "native":
        pad = [(0, 0), (0, -pixels.shape[1] % stride), (0, -pixels.shape[2] % stride)]
        pixels = np.pad(pixels, pad, mode="edge")
    return DecodedImage(pixels, (got, seen[1], seen[0]))


def fit(image: Image.Image, width: int, height: int, resize: Resize) -> Image.Image:
    """The image at exactly width x height, by the resize mode."""
    if resize == "crop":
        scale = min(image.size[0] / width, image.size[1] / height)
        crop_w, crop_h = width * scale, height * scale
        left, top = (image.size[0] - crop_w) / 2, (image.size[1] - crop_h) / 2
        return image.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
    if resize == "pad":
        scale = min(width / image.size[0], height / image.size[1])
        inner = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        canvas = Image.new(image.mode, (width, height))
        canvas.paste(
            image.resize(inner, Image.Resampling.BILINEAR), ((width - inner[0]) // 2, (height - inner[1]) // 2)
        )
        return canvas
    return image.resize((width, height), Image.Resampling.BILINEAR)

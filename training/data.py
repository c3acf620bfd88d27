"""Datasets as in-memory tensors with honest train / validation / test splits, at the data's own shape.

Three sources, chosen by `--data`:
- an `.npz` file, either in the Keras layout (x_train, x_test, optionally y_train, y_test; uint8 NHW or NHWC):
  the last `val_size` training images are the validation split, the file's test set is the test split; or
  holding one uint8 image array (N, H, W[, C]), such as the Frey faces, split by `split`: "blocks" (the last 10%
  is the test split, the 10% before it validation: frames of a video are near-duplicates of their neighbours, so
  a random split would leak) or "shuffled" (a seeded shuffle, 80/10/10);
- a folder of PNG/JPEG images, searched recursively; an image's top-level subfolder names its class; a seeded
  shuffle splits it 80/10/10;
- `synthetic` (or `synthetic:N`): N small class-labelled stroke images made on the fly, for tests.

Height, width and channels come from the data. `--image-size H W` resizes and `--image-channels C` (1 or 3)
converts, only when given; images that disagree in size or colour without them are an error naming two of them.
The test split is only ever read by evaluation, never by training or model selection.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from contract.images import MODE_CHANNELS, eight_bit, exif_orientation, upright

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
KERAS_LAYOUT = "x_train uint8 (N, H, W) or (N, H, W, C), x_test likewise, optionally y_train and y_test labels (N,)"
LAYOUTS = f"the Keras layout ({KERAS_LAYOUT}), or a single uint8 image array (N, H, W[, C])"
Size = tuple[int, int] | None  # (height, width) to resize to; None keeps the data's own


@dataclass
class DataOptions:
    data: str = "data/mnist.npz"  # an .npz, an image folder, or synthetic[:N] (docs/training.md: where to get data)
    image_size: tuple[int, int] | None = None  # resize every image to H W (default: the data's own size)
    image_channels: int | None = None  # convert to 1 (grey) or 3 (RGB) channels (default: the data's own)
    val_size: int = 0  # Keras-layout .npz: the last N training images validate (0: 10%, at most 5000)
    split: str = "blocks"  # a single-array .npz: blocks (the last 10% test, the 10% before it validation) | shuffled


@dataclass
class ImageSet:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64, -1 where unknown

    def __len__(self) -> int:
        return len(self.images)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            yield self.images[index], self.labels[index]


@dataclass
class Splits:
    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    num_classes: int  # 0 when the data has no labels
    split: str = ""  # how the splits were made, for the checkpoint and the manifest

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def to_image_set(pixels: np.ndarray, labels: np.ndarray) -> ImageSet:
    """uint8 (N, H, W, C) -> ImageSet with (N, C, H, W) floats."""
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).float() / 255.0
    return ImageSet(images, torch.from_numpy(labels.astype(np.int64)))


def conform(pixels: np.ndarray, size: Size, channels: int | None) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> (N, H', W', C'), resized (bilinear) and converted only where asked."""
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.shape[-1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels; these have {pixels.shape[-1]}")
    if (channels is None or channels == pixels.shape[-1]) and (size is None or tuple(size) == pixels.shape[1:3]):
        return pixels
    mode = "L" if (channels or pixels.shape[-1]) == 1 else "RGB"
    converted = [picture(image, size, mode) for image in pixels]
    return np.stack(converted)


def picture(pixels: np.ndarray, size: Size, mode: str) -> np.ndarray:
    """One uint8 (H, W, C) image, converted to `mode` and resized to `size`, as (H', W', C')."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    return pil_pixels(image, size, mode)


def pil_pixels(image: Image.Image, size: Size, mode: str) -> np.ndarray:
    image = image.convert(mode)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def labels_of(archive: np.lib.npyio.NpzFile, key: str, n: int) -> np.ndarray:
    return archive[key].astype(np.int64) if key in archive.files else np.full(n, -1)


def class_count(*labels: np.ndarray) -> int:
    known = np.concatenate(labels)
    return int(known.max()) + 1 if known.size and known.max() >= 0 else 0


def check_pixels(path: Path, key: str, array: np.ndarray) -> None:
    if array.dtype != np.uint8 or array.ndim not in (3, 4):
        raise ValueError(f"{path}: {key} is {array.dtype} {array.shape}; expected {LAYOUTS}")


def load_npz(path: Path, size: Size, channels: int | None, val_size: int, split: str, seed: int) -> Splits:
    if not path.is_file():
        raise FileNotFoundError(
            f"data file not found: {path}. Expected an .npz in {LAYOUTS}, an image folder, or synthetic[:N]; "
            "see docs/training.md for where to get MNIST, Frey Face and CIFAR-10"
        )
    with np.load(path) as archive:
        if {"x_train", "x_test"} <= set(archive.files):
            x_train, x_test = archive["x_train"], archive["x_test"]
            for key, array in (("x_train", x_train), ("x_test", x_test)):
                check_pixels(path, key, array)
            y_train, y_test = labels_of(archive, "y_train", len(x_train)), labels_of(archive, "y_test", len(x_test))
        elif len(archive.files) == 1:
            key = archive.files[0]
            pixels = archive[key]
            check_pixels(path, key, pixels)
            labels = np.full(len(pixels), -1)
            return split_array(path.name, conform(pixels, size, channels), labels, 0, split, seed)
        else:
            raise ValueError(f"{path} holds {sorted(archive.files)}; expected {LAYOUTS}")
    val_size = val_size or min(5000, len(x_train) // 10)
    if not 0 < val_size < len(x_train):
        raise ValueError(f"val_size must be in (0, {len(x_train)}), got {val_size}")
    cut = len(x_train) - val_size
    x_train, x_test = conform(x_train, size, channels), conform(x_test, size, channels)
    return Splits(
        name=path.name,
        train=to_image_set(x_train[:cut], y_train[:cut]),
        val=to_image_set(x_train[cut:], y_train[cut:]),
        test=to_image_set(x_test, y_test),
        num_classes=class_count(y_train, y_test),
        split=f"train: x_train[:{cut}], validation: x_train[{cut}:], test: x_test ({len(x_test)})",
    )


def split_array(name: str, pixels: np.ndarray, labels: np.ndarray, num_classes: int, split: str, seed: int) -> Splits:
    """80/10/10: contiguous blocks (validation and test last, in that order) or after a seeded shuffle."""
    if split not in ("blocks", "shuffled"):
        raise ValueError(f"split must be 'blocks' or 'shuffled', got {split!r}")
    n_val = n_test = max(1, len(pixels) // 10)
    n_train = len(pixels) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{name}: {len(pixels)} images are too few to split into train/val/test")
    order = np.random.default_rng(seed).permutation(len(pixels)) if split == "shuffled" else np.arange(len(pixels))
    pixels, labels = pixels[order], labels[order]
    parts = (slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None))
    train, val, test = (to_image_set(pixels[part], labels[part]) for part in parts)
    how = f"seeded shuffle (seed {seed})" if split == "shuffled" else "contiguous blocks"
    rule = f"{how}: train {n_train}, validation {n_val}, test {n_test} of {len(pixels)}"
    return Splits(name, train, val, test, num_classes, rule)


def read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            # as viewers show it (cameras store portraits sideways), 16-bit greyscale scaled to 8 bits
            return eight_bit(upright(image, exif_orientation(image)))
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not a readable PNG or JPEG ({error})") from None


def folder_pixels(files: list[Path], size: Size, channels: int | None) -> np.ndarray:
    """Every image at one shape: the first image's, unless size / channels say otherwise."""
    images = {path: read_image(path) for path in files}
    first = images[files[0]]
    grey = {path: MODE_CHANNELS.get(image.mode) == 1 for path, image in images.items()}
    if size is None and (other := next((p for p, image in images.items() if image.size != first.size), None)):
        raise ValueError(
            f"images differ in size: {files[0]} is {first.size[0]}x{first.size[1]} (WxH), {other} is "
            f"{images[other].size[0]}x{images[other].size[1]}; pass --image-size H W to resize them all"
        )
    if channels is None and (other := next((p for p in files if grey[p] != grey[files[0]]), None)):
        raise ValueError(
            f"images differ in colour: {files[0]} is {first.mode}, {other} is {images[other].mode}; "
            "pass --image-channels 1 or 3 to convert them all"
        )
    mode = ("L" if grey[files[0]] else "RGB") if channels is None else ("L" if channels == 1 else "RGB")
    return np.stack([pil_pixels(image, size, mode) for image in images.values()])


def load_image_folder(folder: Path, size: Size, channels: int | None, seed: int) -> Splits:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no PNG or JPEG images under {folder}")
    # As in torchvision's ImageFolder: the top-level subfolder names the class.
    top = [p.relative_to(folder).parts[0] if p.parent != folder else None for p in files]
    class_names = sorted({name for name in top if name is not None})
    class_index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([class_index.get(name, -1) for name in top])
    return split_array(folder.name, folder_pixels(files, size, channels), labels, len(class_names), "shuffled", seed)


def synthetic_pixels(n: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright stroke at an angle of k * 18 degrees, jittered in position."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys, xs = ys - (height - 1) / 2, xs - (width - 1) / 2
    angles = labels * np.pi / 10
    shift = rng.uniform(-2, 2, (n, 2))
    ys, xs = ys[None] - shift[:, 0, None, None], xs[None] - shift[:, 1, None, None]
    across = np.abs(-np.sin(angles)[:, None, None] * xs + np.cos(angles)[:, None, None] * ys)
    along = np.abs(np.cos(angles)[:, None, None] * xs + np.sin(angles)[:, None, None] * ys)
    stroke = np.clip(1.5 - across, 0, 1) * (along < min(height, width) / 3)
    return (stroke * 255).astype(np.uint8), labels


def synthetic(spec: str, size: Size, channels: int | None, seed: int) -> Splits:
    """`synthetic[:N[:CxHxW]]`: N strokes (default 512) of that shape (default 1x28x28; `size` and `channels`
    convert them as any data); colour ones tint each class differently."""
    _, count, shape = (spec.split(":") + ["", ""])[:3]
    try:
        n = int(count or 512)
        made_channels, height, width = (int(x) for x in (shape or "1x28x28").split("x"))
    except ValueError:
        raise ValueError(f"synthetic data is synthetic[:N[:CxHxW]], e.g. synthetic:240:3x32x32; got {spec!r}") from None
    pixels, labels = synthetic_pixels(n, height, width, seed)
    pixels = pixels[..., None]
    if made_channels == 3:
        tint = np.stack([1 - labels / 20, 0.5 + labels / 20, 0.5 + (labels % 2) / 2], axis=1)[:, None, None]
        pixels = (pixels * tint).astype(np.uint8)
    return split_array(spec, conform(pixels, size, channels), labels, 10, "shuffled", seed)


def image_shape(config: object) -> tuple[int, int, int]:
    """(C, H, W) of a model config (every config names its images the same way)."""
    return config.image_channels, config.image_height, config.image_width


def load_splits(options: DataOptions, seed: int, shape: tuple[int, int, int] | None = None) -> Splits:
    """The splits `options` describe; `shape` (C, H, W), a trained model's, converts the images to it."""
    size, channels = options.image_size, options.image_channels
    if shape is not None:
        channels, size = shape[0], shape[1:]
    return load_dataset(options.data, size, channels, options.val_size, options.split, seed)


def load_dataset(
    spec: str,
    image_size: Size = None,
    channels: int | None = None,
    val_size: int = 0,
    split: str = "blocks",
    seed: int = 0,
) -> Splits:
    """The splits of `spec` (see above); `image_size` (H, W) and `channels` resize and convert when given."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if spec.startswith("synthetic"):
        return synthetic(spec, image_size, channels, seed)
    path = Path(spec)
    if path.is_dir():
        return load_image_folder(path, image_size, channels, seed)
    return load_npz(path, image_size, channels, val_size, split, seed)

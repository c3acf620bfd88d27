"""Datasets as in-memory tensors with honest train / validation / test splits.

Three sources, chosen by `--data`:
- a Keras-layout `mnist.npz` (x_train, y_train, x_test, y_test): the last `val_size` training
  images are the validation split, the official test set is the test split;
- a folder of PNG/JPEG images, searched recursively and resized; an image's top-level
  subfolder names its class; a seeded shuffle splits it 80/10/10;
- `synthetic` (or `synthetic:N`): N small class-labelled stroke images made on the fly, for tests.

The test split is only ever read by evaluation, never by training or model selection.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MNIST_LAYOUT = "x_train uint8 (N, H, W), y_train (N,), x_test uint8 (M, H, W), y_test (M,)"


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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def to_image_set(pixels: np.ndarray, labels: np.ndarray) -> ImageSet:
    """uint8 (N, H, W) or (N, H, W, C) -> ImageSet with (N, C, H, W) floats."""
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).float() / 255.0
    return ImageSet(images, torch.from_numpy(labels.astype(np.int64)))


def load_mnist(path: Path, val_size: int = 5000) -> Splits:
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST file not found: {path}. Expected a Keras-layout mnist.npz with {MNIST_LAYOUT}; "
            "pass its path with --data (on the project's machines: ../shared/data/mnist.npz)."
        )
    with np.load(path) as archive:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
        if missing:
            raise ValueError(f"{path} lacks {sorted(missing)}; expected {MNIST_LAYOUT}")
        x_train, y_train, x_test, y_test = (archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if not 0 < val_size < len(x_train):
        raise ValueError(f"val_size must be in (0, {len(x_train)}), got {val_size}")
    cut = len(x_train) - val_size
    return Splits(
        name=path.name,
        train=to_image_set(x_train[:cut], y_train[:cut]),
        val=to_image_set(x_train[cut:], y_train[cut:]),
        test=to_image_set(x_test, y_test),
        num_classes=int(max(y_train.max(), y_test.max())) + 1,
    )


def read_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def split_shuffled(name: str, pixels: np.ndarray, labels: np.ndarray, num_classes: int, seed: int) -> Splits:
    """80/10/10 split after a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(len(pixels))
    pixels, labels = pixels[order], labels[order]
    n_val = n_test = max(1, len(pixels) // 10)
    n_train = len(pixels) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{name}: {len(pixels)} images are too few to split into train/val/test")
    return Splits(
        name=name,
        train=to_image_set(pixels[:n_train], labels[:n_train]),
        val=to_image_set(pixels[n_train : n_train + n_val], labels[n_train : n_train + n_val]),
        test=to_image_set(pixels[n_train + n_val :], labels[n_train + n_val :]),
        num_classes=num_classes,
    )


def load_image_folder(folder: Path, image_size: int, channels: int, seed: int) -> Splits:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no PNG or JPEG images under {folder}")
    # As in torchvision's ImageFolder: the top-level subfolder names the class.
    top = [p.relative_to(folder).parts[0] if p.parent != folder else None for p in files]
    class_names = sorted({name for name in top if name is not None})
    class_index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([class_index.get(name, -1) for name in top])
    pixels = np.stack([read_image(p, image_size, channels) for p in files])
    return split_shuffled(folder.name, pixels, labels, len(class_names), seed)


def synthetic_pixels(n: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright stroke at an angle of k * 18 degrees, jittered in position."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    grid = np.mgrid[0:image_size, 0:image_size].astype(np.float32) - (image_size - 1) / 2
    angles = labels * np.pi / 10
    shift = rng.uniform(-2, 2, (n, 2))
    ys, xs = grid[0][None] - shift[:, 0, None, None], grid[1][None] - shift[:, 1, None, None]
    across = np.abs(-np.sin(angles)[:, None, None] * xs + np.cos(angles)[:, None, None] * ys)
    along = np.abs(np.cos(angles)[:, None, None] * xs + np.sin(angles)[:, None, None] * ys)
    stroke = np.clip(1.5 - across, 0, 1) * (along < image_size / 3)
    return (stroke * 255).astype(np.uint8), labels


def load_dataset(spec: str, image_size: int = 28, channels: int = 1, val_size: int = 5000, seed: int = 0) -> Splits:
    if spec.startswith("synthetic"):
        n = int(spec.partition(":")[2] or 512)
        pixels, labels = synthetic_pixels(n, image_size, seed)
        if channels == 3:
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        return split_shuffled(spec, pixels, labels, 10, seed)
    path = Path(spec)
    if path.is_dir():
        return load_image_folder(path, image_size, channels, seed)
    return load_mnist(path, val_size)

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import load_dataset


def write_fake_mnist(path: Path, n_train: int = 50, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def test_mnist_splits_are_disjoint_and_test_is_the_official_one(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    write_fake_mnist(path)
    splits = load_dataset(str(path), val_size=10)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 20)
    assert splits.image_shape == (1, 28, 28) and splits.num_classes <= 10
    with np.load(path) as raw:
        assert torch.equal(splits.val.images[:, 0], torch.from_numpy(raw["x_train"][40:]).float() / 255)
        assert torch.equal(splits.test.images[:, 0], torch.from_numpy(raw["x_test"]).float() / 255)
    assert splits.train.images.min() >= 0 and splits.train.images.max() <= 1


def test_missing_mnist_names_the_file_and_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz.*x_train uint8"):
        load_dataset(str(tmp_path / "nowhere.npz"))


def test_mnist_without_expected_arrays_is_rejected(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 28, 28)))
    with pytest.raises(ValueError, match="x_train"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_image_folder_is_searched_recursively_resized_and_labelled(tmp_path: Path) -> None:
    for i in range(10):
        folder = tmp_path / "pictures" / ("cats" if i % 2 else "dogs") / ("deep" if i < 4 else "")
        folder.mkdir(parents=True, exist_ok=True)
        mode, size = ("RGB", (40, 30)) if i % 3 else ("L", (16, 16))
        Image.new(mode, size, color=(200, 10, 10) if mode == "RGB" else 128).save(
            folder / f"{i}.{'png' if i % 2 else 'jpg'}"
        )
    (tmp_path / "pictures" / "notes.txt").write_text("not an image")
    splits = load_dataset(str(tmp_path / "pictures"), image_size=(8, 8), channels=3, seed=1)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 10
    assert splits.image_shape == (3, 8, 8)
    grey = load_dataset(str(tmp_path / "pictures"), image_size=(8, 8), channels=1, seed=1)
    assert grey.image_shape == (1, 8, 8)
    labels = torch.cat([grey.train.labels, grey.val.labels, grey.test.labels])
    assert sorted(set(labels.tolist())) == [0, 1]  # cats, dogs: nested folders belong to their top folder


def test_folder_images_are_read_upright_by_their_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored a quarter turn off, as cameras store portraits
    for i in range(4):
        portrait = np.zeros((12, 8), np.uint8)
        portrait[:4] = 255  # white at the top
        picture = Image.fromarray(portrait)
        if i % 2:
            picture.transpose(Image.Transpose.ROTATE_90).save(tmp_path / f"{i}.png", exif=exif.tobytes())
        else:
            picture.save(tmp_path / f"{i}.png")
    splits = load_dataset(str(tmp_path), seed=0)
    assert splits.image_shape == (1, 12, 8)  # all the same size once upright: no "images differ in size"
    images = torch.cat([splits.train.images, splits.val.images, splits.test.images])
    assert (images[:, 0, :4].mean(dim=(1, 2)) > 0.9).all() and (images[:, 0, 4:].amax(dim=(1, 2)) == 0).all()


def test_16_bit_and_8_bit_greyscale_images_share_one_scale(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(np.full((6, 6), 40000, np.uint16)).save(tmp_path / f"deep{i}.png")
        Image.fromarray(np.full((6, 6), 156, np.uint8)).save(tmp_path / f"plain{i}.png")
    splits = load_dataset(str(tmp_path), seed=0)
    images = torch.cat([splits.train.images, splits.val.images, splits.test.images])
    assert splits.image_shape == (1, 6, 6)
    np.testing.assert_allclose(images.numpy(), 156 / 255, atol=1e-6)  # 40000 >> 8 = 156


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no PNG or JPEG"):
        load_dataset(str(tmp_path))


def test_synthetic_data_is_seeded_and_labelled() -> None:
    first, again = load_dataset("synthetic:100", seed=3), load_dataset("synthetic:100", seed=3)
    assert torch.equal(first.train.images, again.train.images)
    assert first.num_classes == 10 and first.train.labels.max() < 10
    assert first.train.images.max() > 0.9  # the strokes are bright

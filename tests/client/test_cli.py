"""`python -m client`: encode a folder (resumably), decode it back, sample a grid, interpolate to a GIF, draw
analogies."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from client.api import Client
from client.cli import main
from client.codes_file import CodesFile
from tests.client.conftest import digits
from tools.local_server import ROOT
from tools.tour import main as draw_tour


def write_digits(folder, names: list[str], seed: int = 0) -> None:
    for name, pixels in zip(names, digits(len(names), seed), strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / name)


def test_encode_resumes_and_decode_names_the_files_back(url: str, tmp_path) -> None:
    images, out = tmp_path / "images", tmp_path / "codes.npy"
    write_digits(images, ["a.png", "b.png", "c/d.png"])
    args = ["--url", url, "--model", "tiny-uncond", "--out", str(out), "--batch-size", "2", "--quiet"]
    main(["encode", str(images), *args])
    assert np.load(out).shape == (3, 7, 7)
    write_digits(images, ["e.png", "f.png"], seed=1)  # new files: a second run encodes only these
    (images / "notes.txt").write_text("not an image")
    main(["encode", str(images), *args])
    codes = np.load(out)
    index = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert codes.shape == (5, 7, 7) and codes.dtype == np.int64
    assert [e["file"] for e in index] == ["a.png", "b.png", "c/d.png", "e.png", "f.png"]
    assert [e["row"] for e in index] == list(range(5)) and {e["model"] for e in index} == {"tiny-uncond"}
    # Two requests were in flight (the default): each row is still its own file's codes.
    with Client(url) as client:
        for entry, row in zip(index, codes, strict=True):
            alone = client.encode("tiny-uncond", Image.open(images / entry["file"])).codes[0]
            assert np.array_equal(row, alone), entry["file"]
    with pytest.raises(SystemExit):
        main(["encode", str(images), *args, "--in-flight", "0"])

    decoded = tmp_path / "decoded"
    main(["decode", str(out), "--url", url, "--out", str(decoded), "--quiet"])
    assert sorted(p.relative_to(decoded).as_posix() for p in decoded.rglob("*.png")) == [
        "a.png",
        "b.png",
        "c/d.png",
        "e.png",
        "f.png",
    ]
    assert Image.open(decoded / "c/d.png").size == (28, 28)


def test_a_vae_stores_posterior_means_and_resizes_other_images(url: str, tmp_path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (56, 56), "white").save(images / "big.jpg")
    out = tmp_path / "means.npy"
    main(["encode", str(images), "--url", url, "--model", "tiny-vae", "--out", str(out), "--quiet"])
    means = np.load(out)
    assert means.shape == (1, 2) and means.dtype == np.float32
    main(["decode", str(out), "--url", url, "--out", str(tmp_path / "back"), "--quiet"])
    assert (tmp_path / "back" / "big.png").exists()


def test_an_interrupted_run_is_cut_back_to_what_both_files_hold(tmp_path) -> None:
    store = CodesFile(tmp_path / "codes.npy")
    store.append(np.arange(2 * 49).reshape(2, 7, 7), [{"row": 0, "file": "a"}, {"row": 1, "file": "b"}])
    store.append(np.ones((1, 7, 7), np.int64), [{"row": 2, "file": "c"}])
    assert np.load(store.npy).shape == (3, 7, 7)
    lines = store.index.read_text().splitlines()
    store.index.write_text("\n".join(lines[:2]) + '\n{"row": 2, "fi')  # the crash came mid-line
    assert [e["file"] for e in store.repair()] == ["a", "b"]
    assert np.array_equal(np.load(store.npy), np.arange(2 * 49).reshape(2, 7, 7))
    with pytest.raises(ValueError, match="int64"):
        store.append(np.zeros((1, 2), np.float32), [{"row": 2, "file": "c"}])


def test_rows_written_before_a_crash_with_no_header_are_not_taken_for_later_rows(tmp_path) -> None:
    store = CodesFile(tmp_path / "codes.npy")
    store.append(np.zeros((1, 7, 7), np.int64), [{"row": 0, "file": "a"}])
    with open(store.npy, "ab") as f:  # the crash came after a batch's rows, before its header and index lines
        f.write(np.full((2, 7, 7), 9, np.int64).tobytes()[:700])
    assert [e["file"] for e in store.repair()] == ["a"]
    store.append(np.ones((1, 7, 7), np.int64), [{"row": 1, "file": "b"}])
    store.append(np.full((1, 7, 7), 2, np.int64), [{"row": 2, "file": "c"}])
    codes = np.load(store.npy)
    assert [e["file"] for e in store.entries()] == ["a", "b", "c"]
    assert codes.shape == (3, 7, 7) and [int(row.max()) for row in codes] == [0, 1, 2]
    with open(store.npy, "r+b") as f:  # a file shorter than its header says: only the whole rows it holds count
        f.truncate(f.seek(0, 2) - 100)
    assert [e["file"] for e in store.repair()] == ["a", "b"]
    assert np.load(store.npy).shape == (2, 7, 7)


def test_encode_refuses_a_second_writer_and_a_missing_folder_and_makes_its_out_folders(url: str, tmp_path) -> None:
    write_digits(tmp_path / "images", ["a.png"])
    out = tmp_path / "codes.npy"
    run = ["encode", str(tmp_path / "images"), "--url", url, "--model", "tiny-uncond", "--out", str(out), "--quiet"]
    with CodesFile(out).writing(), pytest.raises(SystemExit, match="another encode is writing"):
        main(run)
    with pytest.raises(SystemExit, match="is not a folder"):  # a mistyped folder is not an empty success
        main(["encode", str(tmp_path / "imagse"), *run[2:]])
    assert not out.exists()
    main(run)  # once the first has finished, the file is free
    assert np.load(out).shape == (1, 7, 7)
    main([*run[:-2], str(tmp_path / "new" / "folder" / "codes.npy"), "--quiet"])  # its folders are made
    assert np.load(tmp_path / "new" / "folder" / "codes.npy").shape == (1, 7, 7)


def test_decode_names_every_row_and_never_two_rows_alike(url: str, tmp_path) -> None:
    store = CodesFile(tmp_path / "codes.npy")
    store.append(np.zeros((2, 7, 7), np.int64), [{"row": i, "file": name, "model": "tiny-uncond", "version": 1}
                                                 for i, name in enumerate(["a.jpg", "a.png"])])  # fmt: skip
    rows = np.concatenate([np.load(store.npy), np.ones((1, 7, 7), np.int64)])  # a row the index does not name
    np.save(tmp_path / "more.npy", rows)
    (tmp_path / "more.jsonl").write_text(store.index.read_text())
    main(["decode", str(tmp_path / "more.npy"), "--url", url, "--out", str(tmp_path / "out"), "--quiet"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000002.png", "a.jpg.png", "a.png"]
    with pytest.raises(SystemExit, match="No such file"):  # one error line, no traceback
        main(["decode", str(tmp_path / "nowhere.npy"), "--url", url, "--out", str(tmp_path / "out")])


def test_sample_and_interpolate_write_pictures(url: str, tmp_path) -> None:
    grid = tmp_path / "grid.png"
    main(["sample", "--url", url, "--model", "tiny-uncond", "--n", "9", "--seed", "0", "--out", str(grid)])
    assert Image.open(grid).size == (3 * 30 + 2, 3 * 30 + 2)
    main(["sample", "--url", url, "--model", "tiny-vqvae", "--n", "2", "--labels", "1", "--out", str(grid)])
    main(["sample", "--url", url, "--model", "tiny-vqvae", "--n", "4", "--labels", "1", "2", "--out", str(grid)])
    assert Image.open(grid).size == (2 * 30 + 2, 2 * 30 + 2)  # labels 1 2 1 2: one class a column
    write_digits(tmp_path, ["a.png", "b.png"])
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    interpolate = ["interpolate", a, b, "--url", url, "--model", "tiny-uncond", "--steps", "4", "--out"]
    main([*interpolate, str(tmp_path / "s.png")])
    assert Image.open(tmp_path / "s.png").size == (4 * 30 + 2, 32)
    main([*interpolate, str(tmp_path / "s.gif")])
    with Image.open(tmp_path / "s.gif") as gif:
        # there and back (Pillow merges frames that repeat, as a tiny model's steps may), 4x upscaled
        assert gif.format == "GIF" and 1 <= gif.n_frames <= 6 and gif.size == (112, 112) and gif.info["loop"] == 0


def test_analogy_draws_each_image_as_every_class(url: str, tmp_path) -> None:
    write_digits(tmp_path, ["a.png", "b.png"])
    out = tmp_path / "analogy.png"
    main(["analogy", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--url", url, "--model", "tiny-cvae",
          "--out", str(out), "--quiet"])  # fmt: skip
    rows = np.asarray(Image.open(out))
    assert rows.shape == (2 * 32, 11 * 30 + 2)  # each row: the image, then it as classes 0..9
    assert not np.array_equal(rows[2:30, 32:60], rows[2:30, 302:330])  # class 0 and class 9 differ
    with pytest.raises(SystemExit, match="no class-conditional decoder"):
        main(["analogy", str(tmp_path / "a.png"), "--url", url, "--model", "tiny-vae", "--out", str(out)])


def test_traverse_draws_a_row_per_latent_dimension(url: str, tmp_path) -> None:
    write_digits(tmp_path, ["a.png"])
    out = tmp_path / "traversal.png"
    main(["traverse", str(tmp_path / "a.png"), "--url", url, "--model", "tiny-vae", "--steps", "5", "--out", str(out)])
    assert Image.open(out).size == (5 * 30 + 2, 2 * 32)  # the tiny VAE's 2 dimensions
    main(["traverse", str(tmp_path / "a.png"), "--url", url, "--model", "tiny-cvae", "--dimensions", "1",
          "--labels", "4", "--out", str(out), "--quiet"])  # fmt: skip
    assert Image.open(out).size == (9 * 30 + 2, 32)
    with pytest.raises(SystemExit, match="traversals need a VAE"):
        main(["traverse", str(tmp_path / "a.png"), "--url", url, "--model", "tiny-uncond", "--out", str(out)])


def test_errors_exit_with_the_services_message(url: str, tmp_path) -> None:
    out = str(tmp_path / "x.png")
    command = [sys.executable, "-m", "client", "sample", "--url", url, "--model", "nothing", "--out", out]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1 and "404 not_found" in result.stderr and "nothing" in result.stderr


def test_the_tour_draws_the_readme_pictures_through_the_client(url: str, tmp_path) -> None:
    draw_tour(["--url", url, "--vqvae", "tiny-uncond", "--vae", "tiny-vae", "--out", str(tmp_path)])
    sizes = {name: Image.open(tmp_path / name).size for name in ("samples.png", "interpolation.png", "manifold.png")}
    assert sizes["samples.png"] == (2 * (10 * 30 + 2), 2 * (8 * 30 + 2))
    assert sizes["interpolation.png"] == (2 * (10 * 30 + 2), 2 * 6 * 32)
    assert sizes["manifold.png"] == (2 * 20 * 28, 2 * 20 * 28)


def photos(folder, sizes: dict[str, tuple[int, int]], seed: int = 0) -> None:
    """Greyscale noise images of the given (width, height), under `folder`."""
    rng = np.random.default_rng(seed)
    for name, (width, height) in sizes.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).save(folder / name)


def test_native_encode_keeps_each_photo_at_its_own_size_and_resumes(url: str, tmp_path) -> None:
    images, out = tmp_path / "images", tmp_path / "codes.npy"
    photos(images, {"a.png": (28, 28), "b.png": (40, 20), "c/d.png": (30, 30)})  # d pads to 32x32
    args = ["--url", url, "--model", "tiny-uncond", "--out", str(out), "--quiet", "--native"]
    main(["encode", str(images), *args, "--batch-size", "2", "--batch-pixels", "1000"])
    photos(images, {"e.png": (12, 44)}, seed=1)
    main(["encode", str(images), *args])  # resumed: only e
    index = CodesFile(out).entries()
    assert [(e["file"], e["height"], e["width"]) for e in index] == [
        ("a.png", 7, 7), ("b.png", 5, 10), ("c/d.png", 8, 8), ("e.png", 11, 3),
    ]  # fmt: skip
    assert [e["offset"] for e in index] == [0, 49, 99, 163] and np.load(out).shape == (163 + 33,)
    with Client(url) as client:
        for entry, grid in CodesFile(out).grids():
            alone = client.encode("tiny-uncond", images / entry["file"], resize="native").codes[0]
            assert np.array_equal(grid, alone), entry["file"]
    with pytest.raises(SystemExit, match="several sizes"):  # a run started native stays native
        main(["encode", str(images), *args[:-1]])
    with pytest.raises(SystemExit, match="one size only"):
        main(["encode", str(images), *args[:3], "tiny-vae", "--out", str(tmp_path / "vae.npy"), "--native"])

    decoded = tmp_path / "decoded"
    main(["decode", str(out), "--url", url, "--out", str(decoded), "--quiet"])
    sizes = {p.relative_to(decoded).as_posix(): Image.open(p).size for p in decoded.rglob("*.png")}
    assert sizes == {"a.png": (28, 28), "b.png": (40, 20), "c/d.png": (32, 32), "e.png": (12, 44)}


def test_a_flat_codes_file_is_cut_back_to_whole_grids(tmp_path) -> None:
    store = CodesFile(tmp_path / "codes.npy")
    entries = [{"file": "a", "offset": 0, "height": 2, "width": 3}, {"file": "b", "offset": 6, "height": 1, "width": 4}]
    store.append(np.arange(10), entries)
    with open(store.npy, "r+b") as f:  # the crash cut the second grid short
        f.truncate(f.seek(0, 2) - 8)
    assert [e["file"] for e in store.repair()] == ["a"]
    assert [grid.tolist() for _, grid in store.grids()] == [[[0, 1, 2], [3, 4, 5]]]
    with pytest.raises(ValueError, match="index entries for 6"):
        store.append(np.arange(5), entries[:1])


def test_the_client_answers_photos_of_several_sizes_grid_by_grid(client: Client) -> None:
    rng = np.random.default_rng(0)
    shots = [Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)) for h, w in [(28, 28), (20, 30)]]
    encoded = client.encode("tiny-uncond", shots, resize="native")
    assert [grid.shape for grid in encoded.codes] == [(7, 7), (5, 8)]  # 30 pads to 32
    assert encoded.resize["from"] == [[1, 28, 28], [1, 20, 30]] and encoded.resize["to"][1] == [1, 20, 32]
    rebuilt = client.reconstruct("tiny-uncond", shots, resize="native", exact=True)
    assert [image.size for image in rebuilt.images] == [(28, 28), (30, 20)]  # cropped back to each photo's size
    assert [pixels.shape for pixels in rebuilt.pixels] == [(1, 28, 28), (1, 20, 30)]
    decoded = client.decode("tiny-uncond", codes=encoded.codes[1])
    assert decoded.images[0].size == (32, 20)

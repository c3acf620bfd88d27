"""`latentgen-bulk` on a local Ray with 2 CPUs, over the tiny packages: a folder of synthetic PNGs in class
subfolders with broken files among them; every row equal to the package's encoder called directly, whatever the
batch size or the number of workers; a run killed with SIGKILL and started again ends with the rows of an
uninterrupted one; verify; the tokens round trip; Parquet, WebDataset and .npz sources."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from contract.images import decode_image, encode_png
from latentgen_bulk import encode as bulk_encode
from latentgen_bulk.__main__ import main
from latentgen_bulk.package import open_package
from latentgen_bulk.tokens import Vocab, grid
from service.config import Settings
from service.main import create_app
from tests.conftest import TinyPipeline
from tools.local_server import ROOT

ray = pytest.importorskip("ray")
MODEL = "tiny-uncond"  # size-free, stride 4, K = 16
BROKEN = {"0/truncated.png": "truncated", "1/notes.png": "not an image", "2/huge.png": "at most"}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 greyscale PNGs in three class folders, some not 28x28 (padded: native), one RGB, and three broken files."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(60):
        size = [(28, 28), (32, 20), (30, 30)][i % 3]
        path = root / str(i % 3) / f"{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
    Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(root / "colour.png")  # no label
    (root / "0" / "truncated.png").write_bytes(encode_png(np.zeros((28, 28), np.uint8))[:40])
    (root / "1" / "notes.png").write_text("not an image")
    Image.new("L", (4100, 4100)).save(root / "2" / "huge.png")  # over 4096 x 4096 pixels, refused from its header
    return root


def run_encode(tiny_pipeline: TinyPipeline, source: Path, out: Path, *options: str) -> None:
    main(["encode", str(source), "--model", MODEL, "--models-dir", str(tiny_pipeline.models), "--out", str(out),
          "--quiet", *options])  # fmt: skip


def rows(out: Path) -> list[dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [row for shard in manifest["shards"] for row in pq.read_table(out / shard["name"]).to_pylist()]


@pytest.fixture(scope="module")
def encoded(tiny_pipeline: TinyPipeline, images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bulk") / "codes"
    run_encode(tiny_pipeline, images, out, "--workers", "2", "--batch-size", "7", "--shard-rows", "10")
    return out


def test_every_row_is_the_package_s_own_encoding_and_bad_files_are_listed(
    tiny_pipeline: TinyPipeline, images: Path, encoded: Path
) -> None:
    manifest = json.loads((encoded / "manifest.json").read_text())
    assert manifest["rows"] == 61 and manifest["errors"] == 3 and len(manifest["shards"]) == 7
    assert manifest["model"] == MODEL and manifest["resize"] == "native" and manifest["stride"] == 4
    assert manifest["classes"] == ["0", "1", "2"]
    errors = {e["key"]: e["error"] for e in map(json.loads, (encoded / "errors.jsonl").read_text().splitlines())}
    assert set(errors) == set(BROKEN) and all(BROKEN[key] in errors[key] for key in BROKEN), errors
    package = open_package(tiny_pipeline.unconditional_package)
    table = pq.read_table(encoded / manifest["shards"][0]["name"])
    assert table.schema.field("codes").type == pa.list_(pa.int16())
    for row in rows(encoded):
        data = (images / row["key"]).read_bytes()
        image = decode_image(data, (1, 28, 28), "native", stride=4)
        alone = package.encode(image.pixels[None])[0]
        assert np.array_equal(np.reshape(row["codes"], (row["height"], row["width"])), alone), row["key"]
        assert row["label"] == (int(row["key"][0]) if "/" in row["key"] else None)
    assert {(r["height"], r["width"]) for r in rows(encoded)} == {(7, 7), (8, 5), (8, 8)}  # 30x30 padded to 32


def test_codes_do_not_depend_on_the_batch_size_or_the_workers(
    tiny_pipeline: TinyPipeline, images: Path, encoded: Path, tmp_path: Path
) -> None:
    for batch_size, workers in [(1, 1), (64, 1)]:
        out = tmp_path / f"b{batch_size}"
        run_encode(tiny_pipeline, images, out, "--batch-size", str(batch_size), "--workers", str(workers),
                   "--shard-rows", "10")  # fmt: skip
        assert rows(out) == rows(encoded), batch_size


def test_a_killed_run_started_again_ends_with_the_rows_of_an_uninterrupted_one(
    tiny_pipeline: TinyPipeline, images: Path, encoded: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    command = [sys.executable, "-m", "latentgen_bulk", "encode", str(images), "--model", MODEL, "--models-dir",
               str(tiny_pipeline.models), "--out", str(out), "--quiet", "--batch-size", "1",
               "--shard-rows", "10"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("train-*.parquet")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and every Ray process it started
    process.wait()
    assert not (out / "manifest.json").exists() and list(out.glob("train-*.parquet"))
    run_encode(tiny_pipeline, images, out, "--batch-size", "1", "--shard-rows", "10")
    assert rows(out) == rows(encoded)
    assert not list(out.glob(".*.partial"))


def test_another_model_or_plan_is_refused_in_the_same_folder(
    tiny_pipeline: TinyPipeline, images: Path, encoded: Path
) -> None:
    with pytest.raises(SystemExit, match="holds shards of tiny-uncond"):
        main(["encode", str(images), "--model", "tiny-vqvae", "--models-dir", str(tiny_pipeline.models), "--out",
              str(encoded), "--quiet"])  # fmt: skip
    with pytest.raises(SystemExit, match="shard_rows"):
        run_encode(tiny_pipeline, images, encoded, "--shard-rows", "20")


def test_a_finished_folder_run_again_starts_no_ray_and_keeps_its_shards(
    tiny_pipeline: TinyPipeline, images: Path, encoded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {path.name: path.stat().st_mtime_ns for path in encoded.iterdir() if path.suffix == ".parquet"}
    monkeypatch.setattr(bulk_encode, "start_ray", lambda address: pytest.fail("Ray started for a finished folder"))
    run_encode(tiny_pipeline, images, encoded, "--workers", "2", "--batch-size", "7", "--shard-rows", "10")
    assert {path.name: path.stat().st_mtime_ns for path in encoded.iterdir() if path.suffix == ".parquet"} == before
    monkeypatch.undo()
    everything = rows(encoded)
    (encoded / sorted(before)[2]).unlink()  # a shard lost after the run finished: Ray starts, and it comes back
    run_encode(tiny_pipeline, images, encoded, "--workers", "2", "--batch-size", "7", "--shard-rows", "10")
    assert rows(encoded) == everything


def test_verify_passes_and_fails_after_one_flipped_byte(
    tiny_pipeline: TinyPipeline, images: Path, encoded: Path, tmp_path: Path
) -> None:
    models = ["--models-dir", str(tiny_pipeline.models)]
    main(["verify", str(encoded), "--source", str(images), "--sample", "20", *models])
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in encoded.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    shard = copy / "train-00003.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as failed:
        main(["verify", str(copy), *models])
    assert failed.value.code == 1


def test_tokens_round_trip_to_the_same_decoded_image(
    tiny_pipeline: TinyPipeline, encoded: Path, tmp_path: Path
) -> None:
    tokens_dir = tmp_path / "tokens"
    main(["tokens", str(encoded), "--out", str(tokens_dir), "--offset", "1000", "--class-tokens"])
    vocab_file = json.loads((tokens_dir / "vocab.json").read_text())
    vocab = Vocab(1000, 16, 3)
    assert vocab_file["codes"] == [1000, 1016] and vocab_file["classes"] == [1019, 1022]
    sequences = pq.read_table(tokens_dir / "train-00000.parquet").to_pylist()
    originals = {row["key"]: row for row in rows(encoded)}
    with TestClient(create_app(Settings(MODELS_DIR=tiny_pipeline.models))) as client:
        for entry in sequences[:4]:
            codes, label = grid(np.asarray(entry["tokens"]), vocab)
            row = originals[entry["key"]]
            assert label == row["label"] and codes.shape == (row["height"], row["width"])
            url = f"/v1/models/{MODEL}/decode?format=array"
            from_tokens = client.post(url, json={"codes": [codes.tolist()]}).json()["arrays"]
            from_codes = client.post(url, json={"codes": [np.reshape(row["codes"], codes.shape).tolist()]}).json()
            assert from_tokens == from_codes["arrays"]


def test_decode_writes_images_back_inside_the_folder(
    tiny_pipeline: TinyPipeline, encoded: Path, tmp_path: Path
) -> None:
    main(
        [
            "decode",
            str(encoded),
            "--out",
            str(tmp_path / "png"),
            "--limit",
            "5",
            "--models-dir",
            str(tiny_pipeline.models),
        ]
    )
    written = sorted(p.relative_to(tmp_path / "png").as_posix() for p in (tmp_path / "png").rglob("*.png"))
    assert len(written) == 5 and written[0].startswith("0/")


def test_parquet_webdataset_and_npz_sources(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pictures = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    files = [encode_png(p) for p in pictures]
    package = open_package(tiny_pipeline.unconditional_package)
    expected = package.encode(pictures[:, None].astype(np.float32) / 255)
    table = pa.table({"key": [f"k{i}" for i in range(6)], "image": files, "label": list(range(6))})
    pq.write_table(table, tmp_path / "images.parquet")
    with tarfile.open(tmp_path / "images.tar", "w") as tar:
        for i, data in enumerate(files):
            for name, payload in ((f"k{i}.png", data), (f"k{i}.cls", str(i).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    np.savez(tmp_path / "images.npz", x_train=pictures[:4], y_train=np.arange(4), x_test=pictures[4:], y_test=[4, 5])
    for source in ("images.parquet", "images.tar", "images.npz"):
        out = tmp_path / f"out-{source}"
        run_encode(tiny_pipeline, tmp_path / source, out)
        found = rows(out)
        assert [r["label"] for r in found] == list(range(6)), source
        for row, want in zip(found, expected, strict=True):
            assert np.array_equal(np.reshape(row["codes"], (7, 7)), want), (source, row["key"])


def test_hugging_face_datasets_loads_the_shards(encoded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # read before datasets is imported: it never looks for the Hub
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_dir=str(encoded), split="train")
    assert len(loaded) == 61 and set(loaded.column_names) == {
        "key",
        "source_sha256",
        "label",
        "height",
        "width",
        "codes",
    }
    assert loaded[0]["key"] == rows(encoded)[0]["key"]


def test_the_bulk_package_imports_without_torch_fastapi_or_the_service() -> None:
    blocked = "import sys; sys.modules.update(torch=None, fastapi=None, service=None, training=None, client=None)"
    code = f"{blocked}; import latentgen_bulk.__main__, latentgen_bulk.encode; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_rows_equal_the_service_s_own_encode(tiny_pipeline: TinyPipeline, images: Path, encoded: Path) -> None:
    with TestClient(create_app(Settings(MODELS_DIR=tiny_pipeline.models))) as client:
        for row in rows(encoded)[::10]:
            files = [("images", (images / row["key"]).read_bytes())]
            served = client.post(f"/v1/models/{MODEL}/encode", params={"resize": "native"}, files=files).json()
            assert served["codes"][0] == np.reshape(row["codes"], (row["height"], row["width"])).tolist(), row["key"]

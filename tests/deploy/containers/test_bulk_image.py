"""The bulk image (the RayJob's): `latentgen-bulk encode` on a local Ray inside the container, over a mounted folder
of images, with the bundled package baked into the image; the shards it writes are the package's own codes."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from contract.images import decode_image
from latentgen_bulk.package import open_package
from tests.deploy.containers.conftest import ROOT, build, docker


def test_the_bulk_image_encodes_a_mounted_folder_into_shards(tmp_path: Path) -> None:
    image = build("latentgen:bulk-test", "--target", "bulk")
    source, out = tmp_path / "images", tmp_path / "shards"
    rng = np.random.default_rng(0)
    for i in range(12):
        (source / str(i % 2)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(source / str(i % 2) / f"{i}.png")
    out.mkdir()
    out.chmod(0o777)  # the image runs as uid 10001: it reads the images and writes the shards
    tmp_path.chmod(0o755)
    command = ("encode", "/data/images", "--model", "cifar10-vqvae", "--out", "/data/shards/run", "--quiet")
    ran = docker("run", "--rm", "--network", "none", "--shm-size", "1g", "-v", f"{tmp_path}:/data", image, *command)
    manifest = json.loads((out / "run" / "manifest.json").read_text())
    assert manifest["rows"] == 12 and manifest["classes"] == ["0", "1"], ran.stderr[-2000:]
    package = open_package(max((ROOT / "exported_models" / "cifar10-vqvae").iterdir(), key=lambda p: int(p.name)))
    for row in pq.read_table(out / "run" / manifest["shards"][0]["name"]).to_pylist():
        pixels = decode_image((source / row["key"]).read_bytes(), (3, 32, 32), "native", stride=4).pixels
        assert np.array_equal(np.reshape(row["codes"], (8, 12)), package.encode(pixels[None])[0]), row["key"]

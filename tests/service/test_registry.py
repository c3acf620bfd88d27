import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from contract.errors import ModelUnavailableError, NotFoundError
from contract.manifest import sha256_file
from service.config import Settings
from service.package import batch_delay, session_options
from service.registry import Registry
from tests.conftest import TinyPipeline


@pytest.fixture
def models_dir(tiny_pipeline: TinyPipeline, tmp_path: Path) -> Path:
    """Two versions of a good model and one of every kind of broken one."""
    root = tmp_path / "models"
    for target in ("good/1", "good/2", "corrupt/1", "missing/1", "badjson/1", "renamed/1", "badshape/1"):
        shutil.copytree(tiny_pipeline.package, root / target)
    for version in ("1", "2"):
        manifest = json.loads((root / "good" / version / "manifest.json").read_text())
        manifest.update(id="good", version=int(version))
        (root / "good" / version / "manifest.json").write_text(json.dumps(manifest))
    np.save(root / "badshape" / "1" / "codebook.npy", np.zeros((16, 5), np.float32))  # D is 4
    for name in ("corrupt", "missing", "badjson", "badshape"):
        manifest = json.loads((root / name / "1" / "manifest.json").read_text())
        manifest["files"]["codebook.npy"] = sha256_file(root / name / "1" / "codebook.npy")
        (root / name / "1" / "manifest.json").write_text(json.dumps({**manifest, "id": name}))
    with open(root / "corrupt" / "1" / "decoder.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    (root / "missing" / "1" / "prior.onnx").unlink()
    (root / "badjson" / "1" / "manifest.json").write_text("{not json")
    (root / "stray-file.txt").write_text("ignored")
    (root / "good" / "latest").mkdir()  # not a numeric version
    return root


def test_broken_packages_are_listed_with_reasons_and_do_not_stop_the_others(models_dir: Path) -> None:
    registry = Registry(Settings(MODELS_DIR=models_dir))
    registry.load()
    assert sorted(registry.models) == ["good"] and sorted(registry.models["good"]) == [1, 2]
    reasons = {(u.id, u.version): u.reason for u in registry.unavailable}
    assert "sha256" in reasons[("corrupt", 1)]
    assert "missing file prior.onnx" in reasons[("missing", 1)]
    assert "JSON" in reasons[("badjson", 1)] or "json" in reasons[("badjson", 1)]
    assert "codebook.npy has shape [16, 5]" in reasons[("badshape", 1)]
    assert "tiny-vqvae/1" in reasons[("renamed", 1)]  # its manifest names another model
    assert "numeric version" in reasons[("good", None)]


def test_newest_version_by_default_and_named_versions(models_dir: Path) -> None:
    registry = Registry(Settings(MODELS_DIR=models_dir))
    registry.load()
    assert registry.get("good").version == 2
    assert registry.get("good", 1).version == 1
    model = registry.get("good")
    assert model.provider == "CPUExecutionProvider"
    assert set(model.sessions) == {"encoder", "decoder", "prior", "prior_row", "prior_position"}
    assert model.codebook.shape == (16, 4)
    with pytest.raises(NotFoundError, match="no version 3"):
        registry.get("good", 3)
    with pytest.raises(NotFoundError, match="no model"):
        registry.get("nothing")
    with pytest.raises(ModelUnavailableError, match="sha256"):
        registry.get("corrupt")


def test_missing_models_folder_serves_nothing(tmp_path: Path) -> None:
    registry = Registry(Settings(MODELS_DIR=tmp_path / "absent"))
    registry.load()
    assert registry.models == {} and registry.unavailable == []


def test_unknown_provider_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NoSuchExecutionProvider"):
        Registry(Settings(MODELS_DIR=tmp_path, PROVIDERS="NoSuchExecutionProvider")).load()


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (16, 15)])
def test_onnxruntime_leaves_one_core_to_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert session_options(Settings(INTRA_OP_THREADS=0)).intra_op_num_threads == threads
    assert session_options(Settings(INTRA_OP_THREADS=4)).intra_op_num_threads == 4


@pytest.mark.parametrize(
    ("setting", "provider", "seconds"),
    [(None, "CPUExecutionProvider", 0.0), (None, "CUDAExecutionProvider", 0.005), (20, "CPUExecutionProvider", 0.02)],
)
def test_batches_wait_on_a_gpu_only_unless_told(setting: float | None, provider: str, seconds: float) -> None:
    assert batch_delay(Settings(BATCH_DELAY_MS=setting), provider) == seconds


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"image_shape": [4, 28, 28]}, "1 or 3 channels"),  # no PNG codec for 4 channels
        ({"image_shape": [3, 28, 28]}, "encoder.image has shape [-1, 1, -1, -1]"),  # graphs of another shape
        ({"latent_shape": [4, 7, 5]}, "prior.logits has shape [-1, 16, 7, 7]"),  # the prior is not size-free
        ({"image_shape": [1, 28, 20]}, "size_free.trained_size must be the image shape's"),
    ],
)
def test_a_package_the_service_cannot_serve_is_unavailable_with_the_reason(
    tiny_pipeline: TinyPipeline, tmp_path: Path, change: dict, reason: str
) -> None:
    root = tmp_path / "models"
    shutil.copytree(tiny_pipeline.package, root / "odd" / "1")
    shutil.copytree(tiny_pipeline.package, root / "tiny-vqvae" / "1")
    manifest = json.loads((root / "odd" / "1" / "manifest.json").read_text())
    (root / "odd" / "1" / "manifest.json").write_text(json.dumps({**manifest, "id": "odd", **change}))
    registry = Registry(Settings(MODELS_DIR=root))
    registry.load()
    assert list(registry.models) == ["tiny-vqvae"]  # the other still serves
    assert reason in registry.unavailable[0].reason

"""Checkpoints cut into small parts and joined back (training/shards.py), and the training CLI's independence
from the service's dependencies: both are what a run on a lent GPU machine needs (tools/gpu.sh)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tools.shards import join, split
from training.checkpoint import load_model
from training.models.pixelcnn import PixelCNN, PixelCNNConfig

ROOT = Path(__file__).resolve().parents[2]


def saved_prior(path: Path) -> PixelCNN:
    torch.manual_seed(0)
    config = PixelCNNConfig(num_codes=16, grid_height=5, grid_width=5, channels=32, layers=4, kernel=3, head_hidden=64)
    prior = PixelCNN(config)
    optimizer_state = {"state": {0: {"exp_avg": torch.ones(10_000)}}}
    torch.save({"kind": "prior", "config": vars(config), "model": prior.state_dict(), "epoch": 3,
                "optimizer": optimizer_state, "rng": {"torch": torch.get_rng_state()}}, path)  # fmt: skip
    return prior.eval()


@pytest.mark.parametrize("half", [False, True])
def test_split_parts_stay_under_the_limit_and_join_back(tmp_path: Path, half: bool) -> None:
    prior = saved_prior(tmp_path / "best.pt")
    max_mib = 0.2
    paths = split(tmp_path / "best.pt", tmp_path / "out" / "prior", max_mib=max_mib, half=half)
    assert len(paths) > 1 and all(p.stat().st_size <= max_mib * 2**20 for p in paths)
    joined = load_model(join(tmp_path / "out" / "prior", tmp_path / "joined.pt"), "prior")
    state = torch.load(tmp_path / "joined.pt", weights_only=False)
    assert state["epoch"] == 3 and "optimizer" not in state and "rng" not in state
    for name, tensor in prior.state_dict().items():
        tolerance = 1e-3 * tensor.abs().max().item() if half and tensor.is_floating_point() else 0
        assert torch.allclose(joined.state_dict()[name], tensor, atol=tolerance, rtol=0), name
        assert joined.state_dict()[name].dtype == tensor.dtype


def test_join_names_a_missing_part(tmp_path: Path) -> None:
    saved_prior(tmp_path / "best.pt")
    paths = split(tmp_path / "best.pt", tmp_path / "prior", max_mib=0.2)
    paths[1].unlink()
    with pytest.raises(ValueError, match="found parts"):
        join(tmp_path / "prior", tmp_path / "joined.pt")
    with pytest.raises(FileNotFoundError):
        join(tmp_path / "nothing", tmp_path / "joined.pt")


def test_split_refuses_a_tensor_larger_than_a_part(tmp_path: Path) -> None:
    saved_prior(tmp_path / "best.pt")
    with pytest.raises(ValueError, match="more than a part may"):
        split(tmp_path / "best.pt", tmp_path / "prior", max_mib=0.1)


BLOCK_SERVICE_DEPENDENCIES = """
import runpy, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pydantic", "pydantic_settings", "fastapi", "starlette", "uvicorn"}:
            raise ImportError(f"{name} is not installed on a torch-only machine")
sys.meta_path.insert(0, Blocker())
sys.argv = ["training", *sys.argv[1:]]
runpy.run_module("training", run_name="__main__")
"""


@pytest.mark.parametrize("command", ["vqvae", "prior", "vae", "classifier", "evaluate", "sweep"])
def test_training_commands_need_no_service_dependencies(command: str) -> None:
    """A lent GPU machine's Python has torch but no pydantic or FastAPI: every command but export runs there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_SERVICE_DEPENDENCIES, command, "--help"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"python -m training {command}" in result.stdout

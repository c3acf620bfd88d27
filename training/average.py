"""Checkpoint averaging (a "model soup", Wortsman et al. 2022): the mean of the weights of models of one
architecture fine-tuned from a common ancestor. Such weights lie in one basin, so their mean is a working model,
often better than each (the bundled prior samples better than both of its ingredients: docs/experiments).

python -m training average --kind prior --checkpoints A,B --out runs/prior-average.pt
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import load_checkpoint


@dataclass
class AverageOptions:
    checkpoints: str = ""  # comma-separated checkpoint files or VQ-VAE package folders, at least two
    kind: str = "prior"  # which model of a package folder to read
    out: str = "runs/average.pt"


def average_checkpoints(paths: list[str], kind: str) -> dict[str, Any]:
    """The last checkpoint's record (kind, config, epochs, data...) with the mean of all their weights."""
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(paths)}")
    states = [load_checkpoint(path, kind=kind) for path in paths]
    last = states[-1]
    shapes = {name: tensor.shape for name, tensor in last["model"].items()}
    for path, state in zip(paths, states, strict=True):
        # Weights' names and shapes, not configs: a package's config lacks training-only fields such as dropout.
        if state.get("kind") != kind or {name: tensor.shape for name, tensor in state["model"].items()} != shapes:
            raise ValueError(f"{path} is not a {kind!r} checkpoint with the weights of {paths[-1]}")
    weights = {
        # Integer buffers (counters) are not weights: they are kept from the last checkpoint.
        name: torch.stack([state["model"][name] for state in states]).mean(0) if tensor.is_floating_point() else tensor
        for name, tensor in last["model"].items()
    }
    # No optimizer state or random state: an average is a new model to evaluate or export, not a run to resume.
    kept = {key: value for key, value in last.items() if key not in ("model", "optimizer", "rng")}
    return {**kept, "model": weights, "averaged_from": list(paths)}


def write_average(options: AverageOptions) -> Path:
    state = average_checkpoints([path for path in options.checkpoints.split(",") if path], options.kind)
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out

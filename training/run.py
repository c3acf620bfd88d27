"""A training run: its folder, seed, device, metrics log and checkpoints.

A checkpoint stores the model config beside the weights (nanoGPT's convention), so loading is
`Model(Config(**checkpoint["config"]))`, and enough optimizer state to resume.
"""

import contextlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import distributed
from training.checkpoint import load_checkpoint
from training.data import DataOptions


@dataclass
class RunOptions(DataOptions):
    out: str = "runs/<command>"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 500
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, CPU otherwise
    bf16: bool = False  # bfloat16 autocast: ~2x faster on CPUs with AVX512-BF16 and on GPUs
    resume: bool = False  # continue from <out>/last.pt
    init: str | None = None  # fine-tune: start from this checkpoint's weights (same layers, new ones may be added)
    only_new: bool = False  # with --init: train only the weights the checkpoint lacks (a new class bias, say)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the base rate."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Run:
    def __init__(self, options: RunOptions):
        self.options = options
        self.out = Path(options.out)
        self.device = distributed.start(pick_device(options.device))  # under torchrun: this rank's device
        self.world = distributed.world()
        if options.batch_size % self.world.size:
            raise ValueError(f"--batch-size {options.batch_size} (global) does not divide among {self.world.size}")
        if not options.resume and (self.out / "last.pt").exists():  # a new run would overwrite that run's checkpoints
            raise FileExistsError(f"{self.out} holds a run (last.pt): --resume continues it; or pick another --out")
        if self.world.main:
            self.out.mkdir(parents=True, exist_ok=True)
        seed_everything(options.seed)  # the same on every rank: identical initial weights and codebook draws
        self.started = time.monotonic()
        self.resumed_seconds = 0.0

    def seconds(self) -> float:
        """Wall-clock training time, including the runs this one resumed."""
        return self.resumed_seconds + time.monotonic() - self.started

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.options.bf16)

    def epoch_generator(self, epoch: int) -> torch.Generator:
        # Seeding per epoch makes a resumed run shuffle exactly as an uninterrupted one.
        return torch.Generator().manual_seed(self.options.seed * 1000 + epoch)

    def log(self, record: dict[str, Any]) -> None:
        if not self.world.main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()), flush=True)

    def save(self, name: str, state: dict[str, Any]) -> Path:
        path = self.out / name
        if not self.world.main:
            return path
        tmp = path.with_suffix(".tmp")
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        torch.save({**state, "options": asdict(self.options), "rng": rng}, tmp)
        tmp.replace(path)  # a crash mid-write never leaves a truncated checkpoint
        return path

    def resume_state(self) -> dict[str, Any] | None:
        last = self.out / "last.pt"
        if not self.options.resume:
            return None
        if not last.is_file():
            raise FileNotFoundError(f"--resume given but {last} does not exist")
        state = load_checkpoint(last, self.device)
        self.resumed_seconds = state.get("seconds", 0.0)
        # Random draws (codebook restarts, dropout) continue as if the run had never stopped.
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        return state

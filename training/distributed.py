"""Data parallelism with PyTorch's own engine: the same command under `torchrun` on one machine or several.

    torchrun --standalone --nproc_per_node N -m training vqvae ...          # one machine
    torchrun --nnodes M --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node N -m training vqvae ...

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything runs in one process, unchanged. Each rank
has its own device (its GPU by LOCAL_RANK, with NCCL; the CPU with gloo). `--batch-size` is the global batch:
every step, each rank takes its contiguous share of the same shuffled global batch, DistributedDataParallel
averages the gradients, and the learning-rate schedule counts global steps, so N processes take the steps that
one process takes. Running statistics that are not gradients (the VQ codebook's EMA counts and sums, its
dead-code restarts) are synchronized by the module that keeps them (`all_reduce`, `all_gather`). Rank 0 alone
writes checkpoints, metrics and pictures; every rank evaluates the whole validation split, so the validation
figures are exactly a single process's.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world() -> World:
    """This process's place, from torchrun's environment (one process without it)."""
    if not dist.is_initialized():
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def start(device: torch.device) -> torch.device:
    """Joins the process group when torchrun started several processes; returns this rank's device."""
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over every rank, in place (the tensor itself in one process)."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order; ranks may hold different numbers of rows."""
    if not dist.is_initialized():
        return tensor
    sizes = [torch.zeros((), dtype=torch.long, device=tensor.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor(len(tensor), device=tensor.device))
    padded = torch.zeros((int(max(sizes)), *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(size)] for part, size in zip(parts, sizes, strict=True)])


def share(rows: int, part: World | None = None) -> slice:
    """This rank's contiguous share of `rows` (the first ranks take one more when they do not divide evenly)."""
    part = part or world()
    base, extra = divmod(rows, part.size)
    start = part.rank * base + min(part.rank, extra)
    return slice(start, start + base + (part.rank < extra))


def gather_rows(compute: Callable[[slice], torch.Tensor], rows: int) -> torch.Tensor:
    """`compute(rows)` on this rank's share of `rows`, every share gathered back in order (on the CPU)."""
    mine = compute(share(rows))
    if not dist.is_initialized():
        return mine
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else mine.device
    return all_gather(mine.to(device)).cpu()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class DataParallel(DistributedDataParallel):
    """DistributedDataParallel that still answers for its module's attributes (`model.config`), so the stages'
    loss functions work on either. Buffers are not broadcast: the modules that keep running statistics keep them
    in sync themselves, and the others have none."""

    def __init__(self, module: nn.Module, device: torch.device):
        ids = [device.index] if device.type == "cuda" else None
        super().__init__(module, device_ids=ids, broadcast_buffers=False, find_unused_parameters=True)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to train: wrapped for data parallelism when several processes run, else itself."""
    return DataParallel(model, device) if dist.is_initialized() else model

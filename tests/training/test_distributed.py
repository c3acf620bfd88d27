"""Data parallelism on the CPU: gloo, two processes, the same CLI under torchrun.

- torchrun runs a stage to the end and rank 0 alone writes its checkpoints;
- with the same seed and global batch, two processes end where one does, codebook included;
- the two ranks' codebooks stay identical through EMA updates and forced dead-code restarts;
- a two-process run's checkpoint resumes in one process; stage 2's encoding is sharded and gathered in order.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training import distributed
from training.models.vector_quantizer import VectorQuantizer

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
TINY = ["--hidden", "16", "--residual-hidden", "8", "--num-codes", "16", "--code-dim", "4", "--warmup-steps", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def train(out: Path, processes: int, *extra: str) -> None:
    command = ["vqvae", "--data", "synthetic:256", "--batch-size", "32", "--out", str(out), *TINY, *extra]
    launcher = [TORCHRUN, "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable]
    result = subprocess.run(
        [*launcher, "-m", "training", *command], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_torchrun_trains_and_rank_zero_alone_writes(tmp_path: Path) -> None:
    train(tmp_path / "run", 2, "--epochs", "1")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.pt",
        "last.pt",
        "metrics.jsonl",
        "reconstructions.png",
    ]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1  # one writer, one line


def test_two_processes_end_where_one_does(tmp_path: Path) -> None:
    train(tmp_path / "one", 1, "--epochs", "1")
    train(tmp_path / "two", 2, "--epochs", "1")
    one, two = (torch.load(tmp_path / name / "last.pt", weights_only=False)["model"] for name in ("one", "two"))
    assert one.keys() == two.keys()
    for name in one:  # the same steps on the same rows; only the order of the gradient sums differs
        torch.testing.assert_close(two[name].float(), one[name].float(), rtol=1e-4, atol=1e-4, msg=name)


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path: Path) -> None:
    train(tmp_path / "run", 2, "--epochs", "1")
    train(tmp_path / "run", 1, "--epochs", "2", "--resume")  # one more epoch, in one process
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def ranks_agree(rank: int, size: int, init: str, results: dict) -> None:
    """Each rank quantizes its own data; the codebooks must stay one codebook."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    torch.manual_seed(0)  # as seed_everything does: the same on every rank
    quantizer = VectorQuantizer(8, 3, restart_threshold=1e9).train()  # every code "dead": restarted every step
    data = torch.Generator().manual_seed(100 + rank)  # different data per rank
    for _ in range(3):
        quantizer(torch.randn(4, 3, 2, 2, generator=data) * (rank + 1))
    books = [torch.empty_like(quantizer.codebook) for _ in range(size)]
    dist.all_gather(books, quantizer.codebook)
    counts = [torch.empty_like(quantizer.cluster_size) for _ in range(size)]
    dist.all_gather(counts, quantizer.cluster_size)
    shared = distributed.gather_rows(lambda rows: torch.arange(10)[rows] * 2, 10)
    results[rank] = {
        "same_codebook": all(torch.equal(books[0], book) for book in books),
        "same_counts": all(torch.equal(counts[0], count) for count in counts),
        "gathered": shared.tolist(),
    }
    dist.destroy_process_group()


def test_ranks_hold_one_codebook_through_updates_and_restarts(tmp_path: Path) -> None:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(ranks_agree, args=(2, f"file://{tmp_path / 'rendezvous'}", results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        assert results[rank]["same_codebook"] and results[rank]["same_counts"]
        assert results[rank]["gathered"] == list(range(0, 20, 2))  # sharded, gathered back in order


@pytest.mark.parametrize("rows, size", [(10, 2), (7, 3), (2, 4)])
def test_shares_cover_every_row_once(rows: int, size: int) -> None:
    shares = [distributed.share(rows, distributed.World(rank, size)) for rank in range(size)]
    assert [i for part in shares for i in range(rows)[part]] == list(range(rows))

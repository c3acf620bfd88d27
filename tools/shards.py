"""Checkpoints cut into files small enough to travel: a remote machine's runner may bring back files of at most 16 MiB.

`split` keeps what evaluate and export read (kind, config, weights, epoch, time, data, options), drops the
optimizer's and the random generators' state (resuming needs them; they are most of a checkpoint), can halve the
weights' precision, and writes PREFIX.1-of-N.pt ... PREFIX.N-of-N.pt. `join` puts the parts back into one
checkpoint that every command loads, its weights in float32 again.

    python -m tools.shards split runs/prior/best.pt $OUT/prior --half
    python -m tools.shards join gpu-out/prior runs/prior-gpu/best.pt
"""

import argparse
from pathlib import Path

import torch

from training.checkpoint import load_checkpoint

RESUME_ONLY = ("optimizer", "rng")
MARGIN = 64 * 1024  # bytes a part may need beyond its tensors: the pickled metadata and the zip headers


def split(checkpoint: str | Path, prefix: str | Path, max_mib: float = 15.0, half: bool = False) -> list[Path]:
    """Writes the parts; each file stays under max_mib MiB."""
    state = load_checkpoint(checkpoint)
    metadata = {k: v for k, v in state.items() if k not in ("model", *RESUME_ONLY)}
    limit = int(max_mib * 2**20) - MARGIN
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state["model"].items():
        tensor = tensor.half() if half and tensor.is_floating_point() else tensor.clone()
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > limit:
            raise ValueError(f"{name} alone takes {nbytes / 2**20:.1f} MiB, more than a part may ({max_mib} MiB)")
        if groups[-1] and size + nbytes > limit:
            groups.append({})
            size = 0
        groups[-1][name] = tensor
        size += nbytes
    paths = [Path(f"{prefix}.{i}-of-{len(groups)}.pt") for i in range(1, len(groups) + 1)]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for i, (path, weights) in enumerate(zip(paths, groups, strict=True), start=1):
        torch.save({**metadata, "model": weights, "part": (i, len(groups))}, path)
    return paths


def join(prefix: str | Path, out: str | Path) -> Path:
    """One checkpoint from every part of PREFIX; an error names any part that is missing."""
    prefix = Path(prefix)
    parts = [load_checkpoint(path) for path in prefix.parent.glob(f"{prefix.name}.*-of-*.pt")]
    if not parts:
        raise FileNotFoundError(f"no parts {prefix}.I-of-N.pt")
    parts.sort(key=lambda part: part["part"][0])
    count = parts[0]["part"][1]
    found = [part["part"][0] for part in parts]
    if found != list(range(1, count + 1)):
        raise ValueError(f"{prefix}: found parts {found} of {count}")
    weights = {
        name: tensor.float() if tensor.dtype == torch.float16 else tensor
        for part in parts
        for name, tensor in part["model"].items()
    }
    metadata = {k: v for k, v in parts[0].items() if k not in ("model", "part")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**metadata, "model": weights}, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser("python -m tools.shards", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    split_parser = commands.add_parser("split", help="checkpoint -> PREFIX.I-of-N.pt")
    split_parser.add_argument("checkpoint")
    split_parser.add_argument("prefix")
    split_parser.add_argument("--max-mib", type=float, default=15.0)
    split_parser.add_argument("--half", action="store_true", help="weights in float16 (half the bytes)")
    join_parser = commands.add_parser("join", help="PREFIX.I-of-N.pt -> checkpoint")
    join_parser.add_argument("prefix")
    join_parser.add_argument("out")
    args = parser.parse_args()
    if args.command == "split":
        for path in split(args.checkpoint, args.prefix, args.max_mib, args.half):
            print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB)")
    else:
        print(join(args.prefix, args.out))


if __name__ == "__main__":
    main()

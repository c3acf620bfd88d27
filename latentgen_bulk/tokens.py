"""Code grids -> token sequences for language-model training, and back.

One image is `[class] BOI row_0 EOR row_1 EOR ... row_{h-1} EOR EOI`: its codes shifted by `offset`, an end-of-row
token after each grid row (so grids of any shape describe themselves), begin- and end-of-image tokens, and an
optional class token first. The ids, from `offset` up:

    codes      [offset, offset + K)
    BOI, EOI, EOR       offset + K, + 1, + 2
    classes    [offset + K + 3, offset + K + 3 + C)   (with class tokens)

`vocab.json` names every range, so a trainer can merge them into its own id space (`offset` = its vocabulary size).
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latentgen_bulk import shards


@dataclass(frozen=True)
class Vocab:
    offset: int
    num_codes: int
    num_classes: int  # 0 without class tokens

    @property
    def boi(self) -> int:
        return self.offset + self.num_codes

    @property
    def eoi(self) -> int:
        return self.boi + 1

    @property
    def eor(self) -> int:
        return self.boi + 2

    @property
    def first_class(self) -> int:
        return self.boi + 3

    @property
    def size(self) -> int:
        """Ids used, from `offset` up."""
        return self.num_codes + 3 + self.num_classes

    def ranges(self) -> dict:
        found = {
            "codes": [self.offset, self.boi], "begin_of_image": self.boi, "end_of_image": self.eoi,
            "end_of_row": self.eor,
        }  # fmt: skip
        if self.num_classes:
            found["classes"] = [self.first_class, self.first_class + self.num_classes]
        return {**asdict(self), "ids_from": self.offset, "ids_to": self.offset + self.size, **found}


def sequence(codes: np.ndarray, vocab: Vocab, label: int | None = None) -> np.ndarray:
    """One grid (h, w) -> its tokens."""
    rows = np.concatenate([codes + vocab.offset, np.full((len(codes), 1), vocab.eor)], axis=1).ravel()
    head = [vocab.first_class + label] if vocab.num_classes and label is not None else []
    return np.concatenate([head, [vocab.boi], rows, [vocab.eoi]]).astype(np.int64)


def grid(tokens: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, int | None]:
    """Tokens -> (the grid (h, w), the class or None): the inverse of `sequence`."""
    tokens = np.asarray(tokens)
    label = None
    if tokens[0] >= vocab.first_class:
        label, tokens = int(tokens[0] - vocab.first_class), tokens[1:]
    if tokens[0] != vocab.boi or tokens[-1] != vocab.eoi:
        raise ValueError("a sequence starts with the begin-of-image token and ends with the end-of-image one")
    body = tokens[1:-1]
    ends = np.flatnonzero(body == vocab.eor)
    width = int(ends[0]) if len(ends) else 0
    if width == 0 or len(body) % (width + 1):
        raise ValueError("every grid row ends with the end-of-row token, and all rows are as long")
    return body.reshape(-1, width + 1)[:, :-1] - vocab.offset, label


def write_tokens(folder: Path, out: Path, offset: int, class_tokens: bool) -> dict:
    """Every shard of an encode folder -> TOKDIR/train-NNNNN.parquet (key, tokens) and vocab.json."""
    manifest = shards.read_manifest(folder)
    if manifest["kind"] != "vqvae":
        raise SystemExit(f"error: {folder} holds VAE latents, not codes: tokens need a VQ-VAE")
    classes = len(manifest["classes"]) if class_tokens else 0
    if class_tokens and not classes:
        raise SystemExit(f"error: {folder} has no labels (its source had no class folders): drop --class-tokens")
    vocab = Vocab(offset, manifest["num_codes"], classes)
    out.mkdir(parents=True, exist_ok=True)
    kind = pa.int32() if offset + vocab.size < 2**31 else pa.int64()
    for shard in manifest["shards"]:
        table = pq.read_table(folder / shard["name"])
        sequences = [
            sequence(np.asarray(c, np.int64).reshape(h, w), vocab, label)
            for c, h, w, label in zip(
                *(table[n].to_pylist() for n in ("codes", "height", "width", "label")), strict=True
            )
        ]
        tokens = pa.table({"key": table["key"], "tokens": pa.array([s.tolist() for s in sequences], pa.list_(kind))})
        name = shard["name"]  # train-NNNNN.parquet, as the shards: load_dataset(data_dir=TOKDIR) reads them
        shards.write_atomically(
            out / name, lambda path, tokens=tokens: pq.write_table(tokens, path, compression="zstd")
        )
    ranges = {
        **vocab.ranges(),
        "model": manifest["model"],
        "version": manifest["version"],
        "class_names": manifest["classes"][:classes],
    }
    (out / "vocab.json").write_text(json.dumps(ranges, indent=2))
    return ranges

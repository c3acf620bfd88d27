"""The output folder of `latentgen-bulk encode`:

    run.json               the plan, written before any shard: model, version, the package manifest's sha256, the
                           source, its items' digest, the resize mode, rows per shard; a run started again must
                           match it (another model or version is refused)
    train-00000.parquet    rows [0, shard_rows) of the plan that encoded, zstd-compressed; written under a temporary
                           name and renamed, so a shard is there whole or not at all (named as a split, so that
                           `datasets.load_dataset("parquet", data_dir=DIR)` takes the shards and leaves the rest)
    errors-00000.jsonl     that shard's refused items (key, reason), renamed into place before its shard
    manifest.json          written last: everything in run.json, rows, errors, and every shard's name, rows, sha256
    errors.jsonl           every refused item

A run killed at any moment leaves whole shards and temporary files; started again, it removes the temporary files,
keeps the whole shards and encodes the items of the others: the same rows as an uninterrupted run.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from contract.manifest import sha256_file

RUN, MANIFEST, ERRORS = "run.json", "manifest.json", "errors.jsonl"
INT16_CODES = 32768  # codes fit int16 while K <= this


@dataclass
class Plan:
    model: str
    version: int
    manifest_sha256: str  # of the package's manifest.json
    kind: str  # vqvae: codes; vae: latent
    num_codes: int | None
    stride: int | None  # pixels per code of a size-free model
    resize: str
    source: str
    items: int
    keys_sha256: str
    shard_rows: int
    classes: list[str] = field(default_factory=list)  # a folder's label names, by number

    def shard(self, index: int) -> int:
        return index // self.shard_rows

    @property
    def shards(self) -> int:
        return -(-self.items // self.shard_rows)


def shard_name(shard: int) -> str:
    return f"train-{shard:05d}.parquet"  # Hugging Face datasets' split naming: load_dataset(data_dir=) finds them


def errors_name(shard: int) -> str:
    return f"errors-{shard:05d}.jsonl"


def schema(plan: Plan) -> pa.Schema:
    values = (
        pa.list_(pa.int16() if (plan.num_codes or 0) <= INT16_CODES else pa.int32())
        if plan.kind == "vqvae"
        else pa.list_(pa.float32())
    )
    return pa.schema(
        [
            ("key", pa.string()),
            ("source_sha256", pa.string()),
            ("label", pa.int32()),
            ("height", pa.int32()),
            ("width", pa.int32()),
            ("codes" if plan.kind == "vqvae" else "latent", values),
        ]
    )


def write_atomically(path: Path, write) -> None:
    """`write(temporary path)`, flushed to disk, then renamed to `path`: readers see all of it or none."""
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def start(out: Path, plan: Plan) -> set[int]:
    """Records the plan (or checks it against the one recorded) and returns the shards already written."""
    out.mkdir(parents=True, exist_ok=True)
    for partial in out.glob(".*.partial"):  # what a killed run was writing
        partial.unlink()
    recorded = out / RUN
    if recorded.exists():
        before = json.loads(recorded.read_text())
        if (before["model"], before["version"], before["manifest_sha256"]) != (
            plan.model,
            plan.version,
            plan.manifest_sha256,
        ):
            raise SystemExit(
                f"error: {out} holds shards of {before['model']} version {before['version']}; pick another --out"
            )
        changed = [name for name, value in asdict(plan).items() if before.get(name) != value]
        if changed:
            raise SystemExit(f"error: {out} was started with another {', '.join(changed)}; pick another --out")
    else:
        write_atomically(recorded, lambda path: path.write_text(json.dumps(asdict(plan), indent=2)))
    return {shard for shard in range(plan.shards) if (out / shard_name(shard)).exists()}


def write_shard(out: Path, plan: Plan, shard: int, rows: list[dict], errors: list[dict]) -> None:
    """One shard's rows (in plan order) and refused items; the errors first, so a shard never lacks its errors."""
    rows = sorted(rows, key=lambda row: row["index"])
    errors = sorted(errors, key=lambda row: row["index"])
    lines = "".join(json.dumps({"key": e["key"], "error": e["error"]}) + "\n" for e in errors)
    write_atomically(out / errors_name(shard), lambda path: path.write_text(lines))
    table = pa.Table.from_pylist(rows, schema=schema(plan))
    write_atomically(out / shard_name(shard), lambda path: pq.write_table(table, path, compression="zstd"))


def finish(out: Path, plan: Plan) -> dict:
    """Once every shard is written: errors.jsonl and manifest.json (last)."""
    shards = [
        {"name": shard_name(s), "rows": pq.ParquetFile(out / shard_name(s)).metadata.num_rows,
         "sha256": sha256_file(out / shard_name(s))}
        for s in range(plan.shards)
    ]  # fmt: skip
    errors = "".join((out / errors_name(s)).read_text() for s in range(plan.shards))
    write_atomically(out / ERRORS, lambda path: path.write_text(errors))
    manifest = {**asdict(plan), "rows": sum(s["rows"] for s in shards), "errors": errors.count("\n"), "shards": shards}
    write_atomically(out / MANIFEST, lambda path: path.write_text(json.dumps(manifest, indent=2)))
    return manifest


def read_manifest(out: Path) -> dict:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise SystemExit(f"error: {out} has no {MANIFEST}: the encode has not finished (run it again to resume)")
    return json.loads(path.read_text())

"""The encode pipeline on Ray Data: the plan's pending items -> encoder actors (each loads the package once, reads its
items' bytes, decodes and encodes them) -> the driver, which writes each shard once all of its rows are back.

Without an address (and without RAY_ADDRESS) Ray starts on this machine; with one, the job joins that cluster, and
SOURCE and --out must be paths every node sees (a shared mount, or an object store for SOURCE).
"""

import hashlib
import importlib
import math
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from contract.errors import InvalidInputError
from contract.images import decode_image
from contract.manifest import MANIFEST_FILE, read_manifest, sha256_file
from latentgen_bulk import shards
from latentgen_bulk.package import Package, open_package, package_folder
from latentgen_bulk.sources import Item, Reader, digest, list_items

MAX_IMAGE_PIXELS = 4096 * 4096  # as the service's default: larger images are refused from their header
RUN_PIXELS = 1 << 24  # pixels per encoder run: a batch of large photos runs in parts, so memory stays bounded
ITEM_FIELDS = ("key", "label", "kind", "path", "part")
# Batches a worker takes at once, each in a thread of its own: one reads and decodes files while another's batch is
# in the encoder (onnxruntime lets go of the GIL), so a worker's encoder need not wait on its files. The encoder
# itself runs one batch at a time: a worker is one encoder, and --workers says how many run side by side.
CALLS_PER_WORKER = 2


def result_schema(kind: str) -> pa.Schema:
    """What a worker gives back per item: an encoded row, or the item's key and why it was refused."""
    values = ("codes", pa.list_(pa.int64())) if kind == "vqvae" else ("latent", pa.list_(pa.float32()))
    return pa.schema(
        [("index", pa.int64()), ("key", pa.string()), ("error", pa.string()), ("source_sha256", pa.string()),
         ("label", pa.int64()), ("height", pa.int64()), ("width", pa.int64()), values]
    )  # fmt: skip


@dataclass
class Options:
    source: str
    out: Path
    model: str
    version: int | None = None
    models_dir: Path = Path("exported_models")
    address: str | None = None
    workers: int = 1
    batch_size: int = 64
    resize: str | None = None  # default: native for a size-free model, else none
    gpus_per_worker: float = 0
    shard_rows: int = 1000
    quiet: bool = False


def encoded_row(package: Package, row: dict, data: bytes, values: np.ndarray) -> dict:
    grid = values.shape if package.manifest.kind == "vqvae" else (None, None)
    return {
        "index": row["index"], "key": row["key"], "source_sha256": hashlib.sha256(data).hexdigest(),
        "label": row["label"], "height": grid[0], "width": grid[1],
        "codes" if package.manifest.kind == "vqvae" else "latent": values.ravel().tolist(),
    }  # fmt: skip


class EncodeWorker:
    """A Ray actor: the package opened once, then batches of items -> rows (or errors), CALLS_PER_WORKER batches at
    a time (a reader each: a reader keeps the container file it last opened), one in the encoder."""

    def __init__(self, folder: str, source: str, resize: str, gpus: float):
        self.package = open_package(Path(folder), gpus=gpus)
        self.source, self.resize, self.local = source, resize, threading.local()
        self.encoder = threading.Lock()

    def reader(self) -> Reader:
        if not hasattr(self.local, "reader"):
            self.local.reader = Reader(self.source)
        return self.local.reader

    def __call__(self, batch: pa.Table) -> pa.Table:
        manifest, done, groups, reader = self.package.manifest, [], defaultdict(list), self.reader()
        for row in batch.to_pylist():
            try:
                data = reader(Item(**{name: row[name] for name in ITEM_FIELDS}))
                image = decode_image(data, manifest.image_shape, self.resize, MAX_IMAGE_PIXELS, self.package.stride)
                groups[image.pixels.shape].append((row, data, image.pixels))
            except (InvalidInputError, OSError, ValueError, KeyError) as error:
                reason = getattr(error, "message", None) or str(error) or type(error).__name__
                done.append({"index": row["index"], "key": row["key"], "error": reason})
        for shape, members in groups.items():
            step = max(1, RUN_PIXELS // math.prod(shape))
            for start in range(0, len(members), step):
                part = members[start : start + step]
                stacked = np.stack([pixels for _, _, pixels in part])
                with self.encoder:
                    values = self.package.encode(stacked)
                done += [
                    encoded_row(self.package, row, data, v) for (row, data, _), v in zip(part, values, strict=True)
                ]
        return pa.Table.from_pylist(done, schema=result_schema(manifest.kind))


def make_plan(options: Options, folder: Path) -> tuple[shards.Plan, list[Item]]:
    manifest = read_manifest(folder)
    items, classes = list_items(options.source)
    if not items:
        raise SystemExit(f"error: {options.source} holds no images (PNG or JPEG files, Parquet, tars or an .npz)")
    size_free = manifest.size_free
    plan = shards.Plan(
        model=manifest.id, version=manifest.version, manifest_sha256=sha256_file(folder / MANIFEST_FILE),
        kind=manifest.kind, num_codes=manifest.num_codes, stride=size_free.stride if size_free else None,
        resize=options.resize or ("native" if size_free else "none"), source=absolute(options.source), items=len(items),
        keys_sha256=digest(items), shard_rows=options.shard_rows, classes=classes,
    )  # fmt: skip
    return plan, items


def absolute(source: str) -> str:
    """The source as the plan records it: a URI as it is, a local path made absolute."""
    return source if "://" in source else os.path.abspath(source)


def start_ray(address: str | None) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(
        address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
        logging_level="WARNING",
    )  # fmt: skip


def encode(options: Options) -> dict:
    """Runs (or resumes) the encode; returns the finished folder's manifest, with `seconds` and `skipped` added.
    Ray starts while a thread lists the source and imports Ray Data: starting Ray mostly waits on its processes."""
    started = time.monotonic()
    folder = package_folder(options.models_dir, options.model, options.version)
    finished = (options.out / shards.MANIFEST).is_file()  # run again once done: most likely nothing to encode
    with ThreadPoolExecutor(1) as background:
        planning = background.submit(planned, options, folder)
        if not finished:
            background.submit(importlib.import_module, "ray.data")  # seconds of imports, after the plan
            start_ray(options.address)
        plan, items, pending = planning.result()
    if pending:
        run(options, folder, plan, pending, done=len(items) - len(pending))
    manifest = shards.finish(options.out, plan)
    return {**manifest, "seconds": time.monotonic() - started, "skipped": len(items) - len(pending)}


def planned(options: Options, folder: Path) -> tuple[shards.Plan, list[Item], list[dict]]:
    """The plan, its items and the records of those whose shards are still to write."""
    plan, items = make_plan(options, folder)
    written = shards.start(options.out, plan)
    return plan, items, [{"index": i, **item.record()} for i, item in enumerate(items) if plan.shard(i) not in written]


def run(options: Options, folder: Path, plan: shards.Plan, pending: list[dict], done: int) -> None:
    import ray.data

    start_ray(options.address)  # at once if it started beside the plan
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts images
    expected = defaultdict(int)
    for row in pending:
        expected[plan.shard(row["index"])] += 1
    dataset = ray.data.from_items(pending).map_batches(
        EncodeWorker,
        fn_constructor_kwargs={"folder": str(folder.resolve()), "source": options.source, "resize": plan.resize,
                               "gpus": options.gpus_per_worker},
        batch_size=options.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            size=options.workers, max_concurrent_calls_per_actor=CALLS_PER_WORKER, enable_true_multi_threading=True
        ),
        num_gpus=options.gpus_per_worker or None,
    )  # fmt: skip
    rows, errors = defaultdict(list), defaultdict(list)
    with tqdm(total=done + len(pending), initial=done, unit="image", disable=options.quiet) as bar:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                shard = plan.shard(row["index"])
                (errors if row.get("error") else rows)[shard].append(row)
                if len(rows[shard]) + len(errors[shard]) == expected[shard]:
                    shards.write_shard(options.out, plan, shard, rows.pop(shard), errors.pop(shard))
            bar.update(batch.num_rows)

"""`latentgen-bulk`: datasets to code shards on Ray Data, checked, turned into tokens, decoded back for spot checks.

latentgen-bulk encode SOURCE --model ID [--version N] [--models-dir exported_models] --out DIR
               [--address RAY_ADDRESS] [--workers N] [--batch-size N] [--resize MODE] [--gpus-per-worker G]
latentgen-bulk verify DIR [--source SOURCE] [--sample N]
latentgen-bulk tokens DIR --out TOKDIR [--offset N] [--class-tokens]
latentgen-bulk decode DIR --out FOLDER [--limit N]
"""

import argparse
import random
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.parquet as pq

from contract.arguments import positive
from contract.images import RESIZE_MODES, decode_image, png_bytes
from latentgen_bulk import shards
from latentgen_bulk.encode import MAX_IMAGE_PIXELS, Options, encode
from latentgen_bulk.package import open_package, package_folder
from latentgen_bulk.sources import Reader, list_items
from latentgen_bulk.tokens import write_tokens


def rows_of(folder: Path, manifest: dict, limit: int | None = None) -> list[dict]:
    found = []
    for shard in manifest["shards"]:
        found += pq.read_table(folder / shard["name"]).to_pylist()
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


def values_of(row: dict) -> np.ndarray:
    if "codes" in row:
        return np.asarray(row["codes"], np.int64).reshape(row["height"], row["width"])
    return np.asarray(row["latent"], np.float32)


def verify(folder: Path, source: str | None, sample: int, models_dir: Path) -> list[str]:
    """What differs: shard checksums and row counts against the manifest; with `source`, a random sample of rows
    encoded again from it."""
    manifest, problems = shards.read_manifest(folder), []
    for shard in manifest["shards"]:
        path = folder / shard["name"]
        if not path.is_file():
            problems.append(f"{shard['name']}: missing")
        elif shards.sha256_file(path) != shard["sha256"]:
            problems.append(f"{shard['name']}: sha256 differs from the manifest's")
        elif pq.ParquetFile(path).metadata.num_rows != shard["rows"]:
            problems.append(
                f"{shard['name']}: {pq.ParquetFile(path).metadata.num_rows} rows, the manifest says {shard['rows']}"
            )
    if source is None or problems:
        return problems
    package = open_package(package_folder(models_dir, manifest["model"], manifest["version"]))
    if package.manifest_sha256 != manifest["manifest_sha256"]:
        return [f"the package {manifest['model']} version {manifest['version']} differs from the one that encoded"]
    items = {item.key: item for item in list_items(source)[0]}
    rows = rows_of(folder, manifest)
    reader = Reader(source)
    for row in random.Random(0).sample(rows, min(sample, len(rows))):
        if row["key"] not in items:
            problems.append(f"{row['key']}: not in {source}")
            continue
        data = reader(items[row["key"]])
        image = decode_image(data, package.manifest.image_shape, manifest["resize"], MAX_IMAGE_PIXELS, package.stride)
        again = package.encode(image.pixels[None])[0]
        if not np.allclose(again, values_of(row), rtol=0, atol=1e-5) or again.shape != values_of(row).shape:
            problems.append(f"{row['key']}: encoded again, it differs from its row")
    return problems


def safe_name(key: str) -> Path:
    """A key as a relative path inside the output folder (no '..', no absolute path)."""
    parts = [p for p in PurePosixPath(key.replace(":", "_")).parts if p not in ("", ".", "..", "/")]
    return Path(*parts).with_suffix(".png") if parts else Path("image.png")


def decode(folder: Path, out: Path, limit: int, models_dir: Path) -> int:
    manifest = shards.read_manifest(folder)
    package = open_package(package_folder(models_dir, manifest["model"], manifest["version"]), graphs=("decoder",))
    if len(package.manifest.graphs["decoder"].inputs) > 1:
        raise SystemExit(f"error: {manifest['model']}'s decoder takes class labels too; decode it with the service")
    rows = rows_of(folder, manifest, limit)
    for row in rows:
        image = package.decode(values_of(row)[None])[0]
        path = out / safe_name(row["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(image))
    return len(rows)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser("latentgen-bulk", description=__doc__.splitlines()[0])
    commands = main.add_subparsers(dest="command", required=True)
    models = argparse.ArgumentParser(add_help=False)
    models.add_argument("--models-dir", type=Path, default=Path("exported_models"))

    p = commands.add_parser("encode", parents=[models], help="images -> Parquet shards of codes (resumable)")
    p.add_argument("source", help="an image folder, Parquet, WebDataset tars or an .npz (local, s3://, gs://)")
    p.add_argument("--model", required=True)
    p.add_argument("--version", type=int)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--address", help="a Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--workers", type=positive, default=1, help="encoder actors")
    p.add_argument("--batch-size", type=positive, default=64)
    p.add_argument("--resize", choices=RESIZE_MODES, help="default: native for a size-free model, else none")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="> 0: onnxruntime's CUDA provider")
    p.add_argument("--shard-rows", type=positive, default=1000, help="items per shard")
    p.add_argument("--quiet", action="store_true")

    p = commands.add_parser("verify", parents=[models], help="check the shards; re-encode a sample from SOURCE")
    p.add_argument("folder", type=Path)
    p.add_argument("--source")
    p.add_argument("--sample", type=positive, default=32)

    p = commands.add_parser("tokens", help="shards -> token sequences for language-model training")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--offset", type=int, default=0, help="the first id (e.g. your text vocabulary's size)")
    p.add_argument("--class-tokens", action="store_true", help="a class token before each labelled image")

    p = commands.add_parser("decode", parents=[models], help="shards -> PNGs, for spot checks")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=positive, default=100)
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        if args.command == "encode":
            options = Options(
                source=args.source, out=args.out, model=args.model, version=args.version, models_dir=args.models_dir,
                address=args.address, workers=args.workers, batch_size=args.batch_size, resize=args.resize,
                gpus_per_worker=args.gpus_per_worker, shard_rows=args.shard_rows, quiet=args.quiet,
            )  # fmt: skip
            done = encode(options)
            print(
                f"{done['rows']} rows in {len(done['shards'])} shards in {args.out} ({done['model']} version "
                f"{done['version']}); {done['errors']} refused (errors.jsonl); {done['skipped']} already there; "
                f"{done['seconds']:.1f} s",
                file=sys.stderr,
            )
        elif args.command == "verify":
            problems = verify(args.folder, args.source, args.sample, args.models_dir)
            for problem in problems:
                print(f"differs: {problem}", file=sys.stderr)
            if problems:
                sys.exit(1)
            print(
                f"{args.folder}: every shard matches its manifest"
                + (", and the sample encodes the same" if args.source else ""),
                file=sys.stderr,
            )
        elif args.command == "tokens":
            vocab = write_tokens(args.folder, args.out, args.offset, args.class_tokens)
            print(
                f"tokens in {args.out}: ids {vocab['ids_from']} to {vocab['ids_to'] - 1} (vocab.json)", file=sys.stderr
            )
        else:
            print(f"{decode(args.folder, args.out, args.limit, args.models_dir)} images in {args.out}", file=sys.stderr)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

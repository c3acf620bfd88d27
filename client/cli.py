"""`latentgen` (or `python -m client`): encode a folder to a codes file, decode it back, sample, interpolate,
draw analogies and latent traversals.

Every command talks to a running service (`--url`, default $LATENTGEN_URL or http://127.0.0.1:8000;
`--api-key`, default $LATENTGEN_API_KEY).
"""

import argparse
import os
import random
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from client import images as pictures
from client.api import DEFAULT_URL, Client
from client.codes_file import CodesFile
from contract.arguments import positive
from contract.errors import ServiceError

DEFAULT_MODEL = "mnist-vqvae"


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pixel_batches(paths: Sequence[Path], size: int, max_pixels: int) -> Iterator[Sequence[Path]]:
    """At most `size` files a batch, and at most `max_pixels` pixels (read from the headers) unless one file alone
    has more: photos at their own size weigh what their pixels do."""
    batch, pixels = [], 0
    for path in paths:
        weight = pictures.pixel_count(path)
        if batch and (len(batch) == size or pixels + weight > max_pixels):
            yield batch
            batch, pixels = [], 0
        batch.append(path)
        pixels += weight
    if batch:
        yield batch


def load_images(
    paths: Sequence[Path], root: Path, shape: Sequence[int] | None, skipped: list[str]
) -> tuple[list, list[str]]:
    """The files that open as images (converted to the model's shape; shape None: the files as they are, once their
    headers read), with their names under `root`; the others go to `skipped` with the reason."""
    loaded, names = [], []
    for path in paths:
        try:
            loaded.append(pictures.load(path, shape) if shape else pictures.checked_file(path))
            names.append(path.relative_to(root).as_posix())
        except OSError as error:
            skipped.append(f"{path}: {error}")
    return loaded, names


def encode(client: Client, args: argparse.Namespace) -> None:
    """Images under a folder -> codes.npy (VQ code grids, or VAE means) + codes.jsonl, resuming a previous run."""
    if not Path(args.folder).is_dir():
        sys.exit(f"error: {args.folder} is not a folder (encode takes a folder of images)")
    store = CodesFile(args.out)
    with store.writing():  # a second writer gets InUseError, which main() reports as any unusable file
        encode_into(store, client, args)


def check_resumable(done: list[dict], args: argparse.Namespace) -> None:
    if done and done[0]["model"] != args.model:
        sys.exit(f"error: {args.out} holds rows of model {done[0]['model']}; pick another --out")
    if done and ("offset" in done[0]) != args.native:
        held = "grids of several sizes (--native)" if "offset" in done[0] else "grids of one size"
        sys.exit(f"error: {args.out} holds {held}; run as it was started, or pick another --out")


def flat_rows(grids: list[np.ndarray], entries: list[dict], after: dict | None) -> np.ndarray:
    """Grids of several shapes as one run of codes, each index entry told where its grid lies."""
    offset = after["offset"] + after["height"] * after["width"] if after else 0
    for entry, grid in zip(entries, grids, strict=True):
        entry |= {"offset": offset, "height": grid.shape[0], "width": grid.shape[1]}
        offset += grid.size
    return np.concatenate([grid.ravel() for grid in grids])


def encode_into(store: CodesFile, client: Client, args: argparse.Namespace) -> None:
    done = store.repair()
    check_resumable(done, args)
    # A resumed run keeps the version it started with, even if a newer one is being served now.
    info = client.model(args.model, args.version or (done[0]["version"] if done else None))
    if args.native and not info["manifest"].get("size_free"):
        sys.exit(f"error: {args.model} version {info['version']} takes one size only; encode without --native")
    seen = {entry["file"] for entry in done}
    root = Path(args.folder)
    todo = [path for path in pictures.image_files(root) if path.relative_to(root).as_posix() not in seen]
    skipped: list[str] = []

    def store_rows(request: Future | None, names: list[str], files: int) -> None:
        """A request's rows, once it has answered (None: its batch held no image), then the progress of its files."""
        if request is not None:
            result, start = request.result(), len(done)
            entries = [
                {"row": start + i, "file": name, "model": info["model"], "version": info["version"]}
                for i, name in enumerate(names)
            ]
            rows = result.codes if info["kind"] == "vqvae" else result.mean
            if args.native:
                rows = flat_rows(list(rows), entries, done[-1] if done else None)
            store.append(rows, entries)
            done.extend(entries)
        bar.update(files)

    # Requests stay `--in-flight` deep, so the service encodes one batch while the next is read and sent; rows are
    # stored in the files' order, as each request comes back.
    with (
        tqdm(total=len(done) + len(todo), initial=len(done), unit="image", disable=args.quiet) as bar,
        ThreadPoolExecutor(args.in_flight) as pool,
    ):
        pending: deque[tuple[Future | None, list[str], int]] = deque()
        shape = None if args.native else info["manifest"]["image_shape"]
        batches = batched(todo, args.batch_size)
        if args.native:
            batches = pixel_batches(todo, args.batch_size, args.batch_pixels)
        for batch in batches:
            loaded, names = load_images(batch, root, shape, skipped)
            options = {"version": info["version"], "resize": "native" if args.native else "none"}
            request = pool.submit(client.encode, info["model"], loaded, **options) if loaded else None
            pending.append((request, names, len(batch)))
            while len(pending) >= args.in_flight:
                store_rows(*pending.popleft())
        for request in pending:
            store_rows(*request)
    for line in skipped:
        print(f"skipped (not an image): {line}", file=sys.stderr)
    what = "code grids" if info["kind"] == "vqvae" else "posterior means"
    print(f"{len(done)} {what} in {store.npy}, file names in {store.index}", file=sys.stderr)


def png_names(files: list[str], rows: int) -> list[Path]:
    """A PNG name for each row: its file's with .png, or where files would share one (a.jpg beside a.png) the
    whole name + .png for those that were not that PNG; the row's number for a row the index does not name."""
    names = [Path(file).with_suffix(".png") for file in files]
    shared = {name for name, count in Counter(names).items() if count > 1}
    names = [Path(f"{f}.png") if n in shared and Path(f) != n else n for f, n in zip(files, names, strict=True)]
    return names + [Path(f"{i:06d}.png") for i in range(len(names), rows)]


def same_shape_batches(rows: list[np.ndarray], size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row's index, a stack of up to `size` consecutive rows of one shape): one request each."""
    start = 0
    while start < len(rows):
        end = start + 1
        while end < min(start + size, len(rows)) and rows[end].shape == rows[start].shape:
            end += 1
        yield start, np.stack(rows[start:end])
        start = end


def decode(client: Client, args: argparse.Namespace) -> None:
    """A codes file (or any .npy of codes or latents) -> one PNG per row, named after the index's files."""
    found = list(CodesFile(args.codes).grids())
    entries = [entry for entry, _ in found if entry is not None]
    rows = [row for _, row in found]
    model = args.model or (entries[0]["model"] if entries else DEFAULT_MODEL)
    version = args.version or (entries[0]["version"] if entries else None)
    names = png_names([e["file"] for e in entries], len(rows))
    out = Path(args.out)
    written = 0
    with tqdm(total=len(rows), unit="image", disable=args.quiet) as bar:
        for start, chunk in same_shape_batches(rows, args.batch_size):
            given = {"codes": chunk} if np.issubdtype(chunk.dtype, np.integer) else {"latents": chunk}
            result = client.decode(model, **given, labels=args.labels, version=version)
            for name, image in zip(names[start:], result.images, strict=False):
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                image.save(out / name)
                written += 1
            bar.update(len(chunk))
    print(f"{written} images in {out}/", file=sys.stderr)


def sample(client: Client, args: argparse.Namespace) -> None:
    """n samples from the prior -> one PNG grid (the seed is printed, so the grid can be drawn again)."""
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    # Several labels cycle over the samples: --n 100 --labels 0 1 ... 9 makes each column of the grid one class.
    labels = args.labels and [args.labels[i % len(args.labels)] for i in range(args.n if len(args.labels) > 1 else 1)]
    samples = client.sample(
        args.model,
        n=args.n,
        seed=seed,
        temperature=args.temperature,
        top_k=args.top_k,
        labels=labels,
        version=args.version,
        guidance=args.guidance,
    )
    pictures.scaled(samples.grid(), args.scale).save(args.out)
    print(f"{args.n} samples (seed {seed}) in {args.out}", file=sys.stderr)


def interpolate(client: Client, args: argparse.Namespace) -> None:
    """Two image files -> the decoded path between them, as a PNG strip or a looping GIF."""
    shape = client.model(args.model, args.version)["manifest"]["image_shape"]
    start, end = (pictures.load(path, shape) for path in (args.start, args.end))
    result = client.interpolate(
        args.model, start, end, steps=args.steps, method=args.method, labels=args.labels, version=args.version
    )
    if Path(args.out).suffix.lower() == ".gif":
        pictures.save_gif(result.images, args.out, scale=args.scale or 4)
    else:
        pictures.scaled(result.grid(columns=len(result.images)), args.scale or 1).save(args.out)
    print(f"{len(result.images)} steps in {args.out}", file=sys.stderr)


def analogy(client: Client, args: argparse.Namespace) -> None:
    """Image files -> one row each: the image, then its posterior mean drawn as every class (a VAE with a
    class-conditional decoder: the style stays, the class changes)."""
    info = client.model(args.model, args.version)
    classes = info["manifest"].get("decoder_labels", 0)
    if not classes:
        sys.exit(f"error: {args.model} has no class-conditional decoder")
    model, version, shape = info["model"], info["version"], info["manifest"]["image_shape"]
    inputs = [pictures.load(path, shape) for path in args.images]
    means = client.encode(model, inputs, version=version).mean
    rows = [
        pictures.tile(
            [image, *client.decode(model, latents=[mean], labels=list(range(classes)), version=version).images],
            classes + 1,
        )
        for image, mean in zip(inputs, tqdm(means, unit="image", disable=args.quiet), strict=True)
    ]
    pictures.scaled(pictures.stack_rows(rows), args.scale).save(args.out)
    print(f"{len(rows)} images drawn as {classes} classes in {args.out}", file=sys.stderr)


def traverse(client: Client, args: argparse.Namespace) -> None:
    """An image file -> one row per latent dimension: its posterior mean with that dimension swept from --low to
    --high, the others held (how beta-VAE disentanglement is shown)."""
    info = client.model(args.model, args.version)
    if info["kind"] != "vae":
        sys.exit(f"error: {args.model} is a {info['kind']}; traversals need a VAE")
    model, version, shape = info["model"], info["version"], info["manifest"]["image_shape"]
    image = pictures.load(args.image, shape)
    dimensions = args.dimensions if args.dimensions is not None else range(info["manifest"]["latent_shape"][0])
    swept = (
        client.traverse(
            model,
            dimension,
            image=image,
            low=args.low,
            high=args.high,
            steps=args.steps,
            labels=args.labels,
            version=version,
        )
        for dimension in tqdm(dimensions, unit="dimension", disable=args.quiet)
    )
    rows = [pictures.tile(result.images, args.steps) for result in swept]
    pictures.scaled(pictures.stack_rows(rows), args.scale).save(args.out)
    print(f"{len(rows)} dimensions x {args.steps} steps in {args.out}", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("LATENTGEN_URL", DEFAULT_URL), help="the service")
    common.add_argument("--api-key", default=os.environ.get("LATENTGEN_API_KEY"), help="sent as X-API-Key")
    common.add_argument("--timeout", type=float, default=60, help="seconds per request")
    common.add_argument("--version", type=int, help="model version (newest when omitted)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    labels = argparse.ArgumentParser(add_help=False)
    labels.add_argument("--labels", type=int, nargs="+", help="class labels for class-conditional models")

    main = argparse.ArgumentParser("python -m client", description=__doc__.splitlines()[0])
    commands = main.add_subparsers(dest="command", required=True)

    p = commands.add_parser("encode", parents=[common], help=encode.__doc__)
    p.add_argument("folder", help="PNG/JPEG files under it, recursively (resized to the model's size if needed)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--out", default="codes.npy", help="codes file; its index is the same name with .jsonl")
    p.add_argument("--batch-size", type=positive, default=64, help="images per request")
    p.add_argument(
        "--native",
        action="store_true",
        help="size-free models: each image at its own size (padded to the stride); grids of several shapes are "
        "stored flat, with each one's offset and size in the index",
    )
    p.add_argument("--batch-pixels", type=positive, default=2**24, help="with --native: pixels per request")
    p.add_argument("--in-flight", type=positive, default=2, help="requests kept in flight (1: one at a time)")
    p.set_defaults(run=encode)

    p = commands.add_parser("decode", parents=[common, labels], help=decode.__doc__)
    p.add_argument("codes", help="a .npy of code grids (N, h, w) or latents (N, Z)")
    p.add_argument("--model", help=f"default: the one in the codes file's index, else {DEFAULT_MODEL}")
    p.add_argument("--out", default="decoded", help="folder for the PNGs")
    p.add_argument("--batch-size", type=positive, default=64)
    p.set_defaults(run=decode)

    p = commands.add_parser("sample", parents=[common, labels], help=sample.__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int)
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    p.add_argument("--top-k", type=int)
    p.add_argument("--guidance", type=float, help="classifier-free guidance of labelled samples (default: the model's)")
    p.add_argument("--scale", type=int, default=1, help="upscale the grid by this factor")
    p.add_argument("--out", default="samples.png")
    p.set_defaults(run=sample)

    p = commands.add_parser("interpolate", parents=[common, labels], help=interpolate.__doc__)
    p.add_argument("start")
    p.add_argument("end")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--method", choices=["linear", "slerp"], default="linear")
    p.add_argument("--scale", type=int, help="upscale by this factor (default 1 for PNG, 4 for GIF)")
    p.add_argument("--out", default="interpolation.png", help=".png for a strip, .gif for an animation")
    p.set_defaults(run=interpolate)

    p = commands.add_parser("analogy", parents=[common], help=analogy.__doc__)
    p.add_argument("images", nargs="+", help="image files, one row each")
    p.add_argument("--model", required=True, help="a VAE with a class-conditional decoder")
    p.add_argument("--scale", type=int, default=1, help="upscale the grid by this factor")
    p.add_argument("--out", default="analogy.png")
    p.set_defaults(run=analogy)

    p = commands.add_parser("traverse", parents=[common, labels], help=traverse.__doc__)
    p.add_argument("image")
    p.add_argument("--model", default="mnist-vae")
    p.add_argument("--dimensions", type=int, nargs="+", help="latent dimensions, one row each (default: all)")
    p.add_argument("--low", type=float, default=-3.0)
    p.add_argument("--high", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--scale", type=int, default=1, help="upscale the grid by this factor")
    p.add_argument("--out", default="traversal.png")
    p.set_defaults(run=traverse)
    return main


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            args.run(client, args)
    except (ServiceError, OSError) as error:  # the service's answer, or a file that cannot be read or written
        sys.exit(f"error: {error}")

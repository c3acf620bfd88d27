"""What SOURCE holds: the items to encode, each with a key, a label (or None) and where its bytes are, in a stable
order (sorted by key), so that a run started again plans the same shards.

- an image folder, recursively (PNG and JPEG); the top-level subfolders are the labels, as in training (sorted
  names, numbered from 0); files at the top have none. Key: the path relative to the folder.
- Parquet, a file or a folder of them, with a column of image bytes (`image`, `image.bytes` as Hugging Face
  `datasets` writes images, `bytes` or `png`), and optionally `key` and `label`. Key: `key`, else file:row.
- a WebDataset: .tar files (or a folder of them) whose members share a sample name (`000123.png`,
  `000123.cls`). Key: the sample name, with the tar's name before it when there are several.
- an .npz in the training layouts: `x_train` (+ `y_train`, `x_test`, `y_test`), or one array of images. Key:
  split/row. Rows are encoded as PNG (lossless for 8-bit pixels), which is what source_sha256 hashes.

Paths may be URIs that pyarrow's filesystems open (`s3://`, `gs://`), where Ray reads them; listing and reading go
through pyarrow.fs for local paths too.
"""

import hashlib
import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from contract.images import encode_png

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
BYTES_COLUMNS = ("image", "bytes", "png", "jpg", "jpeg")


@dataclass(frozen=True)
class Item:
    key: str
    label: int | None
    kind: str  # file, parquet, tar or npz
    path: str  # the file that holds it
    part: str = ""  # the row (parquet, npz: "split/row") or the tar member

    def record(self) -> dict:
        return asdict(self)


def filesystem(source: str) -> tuple[pafs.FileSystem, str]:
    if "://" in source:
        return pafs.FileSystem.from_uri(source)
    return pafs.LocalFileSystem(), os.path.abspath(source)


def files_under(fs: pafs.FileSystem, path: str) -> list[str]:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{path}: no such file or folder")
    if info.type == pafs.FileType.File:
        return [path]
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted(f.path for f in found if f.type == pafs.FileType.File)


def list_items(source: str) -> tuple[list[Item], list[str]]:
    """The items of SOURCE sorted by key, and the class names of a folder's labels (else [])."""
    fs, path = filesystem(source)
    files = files_under(fs, path)
    suffixes = {PurePosixPath(f).suffix.lower() for f in files}
    if suffixes <= {".npz"} and len(files) == 1:
        return npz_items(fs, files[0]), []
    if suffixes <= {".parquet"}:
        return parquet_items(fs, files), []
    if suffixes <= {".tar"}:
        return tar_items(fs, files), []
    return folder_items(path, [f for f in files if PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES])


def folder_items(root: str, files: list[str]) -> tuple[list[Item], list[str]]:
    relative = [str(PurePosixPath(f).relative_to(root)) for f in files]
    classes = sorted({r.split("/", 1)[0] for r in relative if "/" in r})
    numbers = {name: i for i, name in enumerate(classes)}
    items = [
        Item(key, numbers.get(key.split("/", 1)[0]) if "/" in key else None, "file", path)
        for key, path in zip(relative, files, strict=True)
    ]
    return sorted(items, key=lambda item: item.key), classes


def parquet_items(fs: pafs.FileSystem, files: list[str]) -> list[Item]:
    items = []
    for path in files:
        with fs.open_input_file(path) as f:  # one open: the footer gives the columns and the rows
            parquet = pq.ParquetFile(f)
            columns = [c for c in ("key", "label") if c in parquet.schema_arrow.names]
            table = parquet.read(columns=columns) if columns else None
            rows = parquet.metadata.num_rows
        keys = (
            table["key"].to_pylist() if "key" in columns else [f"{PurePosixPath(path).name}:{i}" for i in range(rows)]
        )
        labels = table["label"].to_pylist() if "label" in columns else [None] * rows
        items += [
            Item(str(k), lab, "parquet", path, str(i)) for i, (k, lab) in enumerate(zip(keys, labels, strict=True))
        ]
    return sorted(items, key=lambda item: item.key)


def tar_items(fs: pafs.FileSystem, files: list[str]) -> list[Item]:
    items = []
    for path in files:
        samples: dict[str, dict[str, str]] = {}
        with fs.open_input_file(path) as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    stem, _, extension = member.name.partition(".")
                    samples.setdefault(stem, {})[extension.lower()] = member.name
            labels = {s: int(tar.extractfile(m["cls"]).read().strip()) for s, m in samples.items() if "cls" in m}
        prefix = f"{PurePosixPath(path).stem}/" if len(files) > 1 else ""
        for stem, members in samples.items():
            image = next((members[e] for e in ("png", "jpg", "jpeg") if e in members), None)
            if image is not None:
                items.append(Item(prefix + stem, labels.get(stem), "tar", path, image))
    return sorted(items, key=lambda item: item.key)


def npz_items(fs: pafs.FileSystem, path: str) -> list[Item]:
    arrays = npz_arrays(fs, path)
    splits = [s for s in ("x_train", "x_test") if s in arrays] or [next(iter(arrays))]
    items = []
    for split in splits:
        labels = arrays.get(split.replace("x_", "y_")) if split.startswith("x_") else None
        for row in range(len(arrays[split])):
            label = None if labels is None else int(labels[row])
            items.append(Item(f"{split.removeprefix('x_')}/{row:07d}", label, "npz", path, f"{split}/{row}"))
    return items  # already in key order


def npz_arrays(fs: pafs.FileSystem, path: str) -> dict[str, np.ndarray]:
    with fs.open_input_file(path) as f, np.load(io.BytesIO(f.read())) as npz:
        return {name: npz[name] for name in npz.files}


class Reader:
    """Reads items' bytes, keeping the last container file it opened (a Parquet table, a tar's members, an .npz's
    arrays): items come in key order, so a worker's batch mostly shares one."""

    def __init__(self, source: str):
        self.fs = filesystem(source)[0]
        self.path, self.content = "", None

    def container(self, item: Item) -> object:
        if item.path != self.path:
            self.path = item.path
            if item.kind == "parquet":
                self.content = pq.read_table(self.fs.open_input_file(item.path))
            elif item.kind == "tar":
                with self.fs.open_input_file(item.path) as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
                    self.content = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
            else:
                self.content = npz_arrays(self.fs, item.path)
        return self.content

    def __call__(self, item: Item) -> bytes:
        """The image file's bytes (an .npz row as PNG)."""
        if item.kind == "file":
            with self.fs.open_input_file(item.path) as f:
                return f.read()
        content = self.container(item)
        if item.kind == "parquet":
            column = next(c for c in content.column_names if c.split(".")[0] in BYTES_COLUMNS)
            value = content[column][int(item.part)].as_py()
            return value["bytes"] if isinstance(value, dict) else value
        if item.kind == "tar":
            return content[item.part]
        split, row = item.part.split("/")
        return encode_png(content[split][int(row)])


def digest(items: list[Item]) -> str:
    """A digest of the plan's keys, to tell a resumed run whether SOURCE still holds the same items."""
    return hashlib.sha256(json.dumps([i.key for i in items]).encode()).hexdigest()

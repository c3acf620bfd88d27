"""A codes file for downstream apps: `codes.npy` (one row per image) beside `codes.jsonl` (one line per row).

Rows are appended batch by batch, so an interrupted `encode` keeps what it finished: the .npy
header is rewritten in place after each batch (numpy leaves room in it for the first axis to
grow), and on resume the two files are cut back to the rows both of them hold. The header is the
record of what the .npy holds: a batch goes in right after the rows it counts, never after bytes
that a crash left beyond them, which would shift every later row away from its index line. One
writer at a time: a second `encode` into the same file is refused while the first runs (where the
OS has POSIX file locks).

Grids of one shape are the .npy's rows (N, h, w), one index line each. Grids of several shapes (photos encoded at
their own sizes by a size-free model) are stored flat: the .npy is one long run of codes, and each index line says
where its grid starts (`offset`) and its `height` and `width`; `grids()` reads them back either way.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no POSIX locks; one writer is then the user's to ensure
    fcntl = None

import numpy as np
from numpy.lib import format as npy


class InUseError(OSError):
    """Another process is writing the codes file (an OSError, as a busy file is, so callers report it alike)."""


def span(entry: dict) -> int:
    """The .npy rows that an index line covers: one grid, or in a flat file its grid's height x width codes."""
    return entry["height"] * entry["width"] if "offset" in entry else 1


class CodesFile:
    def __init__(self, path: str | Path):
        self.npy = Path(path)
        self.index = self.npy.with_suffix(".jsonl")

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Holds the file for one writer (a lock on `<name>.npy.lock`, left in place); a second gets InUseError at
        once while the first runs."""
        self.npy.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.npy}.lock", "a") as lock:
            if fcntl is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    message = f"another encode is writing {self.npy}; wait for it, or pick another --out"
                    raise InUseError(message) from None
                except OSError:  # a filesystem without locks (some network and FUSE mounts): write unguarded
                    pass
            yield

    def entries(self) -> list[dict]:
        """The index lines written so far (a half-written last line is dropped)."""
        if not self.index.exists():
            return []
        entries = []
        for line in self.index.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return entries

    @staticmethod
    def header(f: BinaryIO) -> tuple[tuple[int, ...], np.dtype, int]:
        """(shape, dtype, offset of the data) of an open .npy file."""
        f.seek(0)
        version = npy.read_magic(f)
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran_order, dtype = read(f)
        if fortran_order:
            raise ValueError("a Fortran-ordered .npy cannot be appended to")
        return shape, dtype, f.tell()

    @staticmethod
    def write_header(f: BinaryIO, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
        f.seek(0)
        npy.write_array_header_1_0(f, {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
        if f.tell() != offset:  # never expected: numpy pads the header for the first axis to grow
            raise RuntimeError(f"the .npy header of {shape} no longer fits in place")

    @staticmethod
    def row_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
        return int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def repair(self) -> list[dict]:
        """Cut the .npy and the index back to the rows both hold; returns the index entries kept."""
        entries = self.entries()
        if not self.npy.exists():
            if entries:
                raise ValueError(f"{self.index} exists without {self.npy}; remove it to start again")
            return []
        with open(self.npy, "r+b") as f:
            shape, dtype, offset = self.header(f)
            row_bytes = self.row_bytes(shape, dtype)
            on_disk = (f.seek(0, 2) - offset) // row_bytes if row_bytes else shape[0]
            held, rows, kept = min(shape[0], on_disk), 0, 0
            for entry in entries:  # the index lines whose rows are all there
                if rows + span(entry) > held:
                    break
                rows, kept = rows + span(entry), kept + 1
            if rows < shape[0]:  # the header first: a crash before the cut leaves bytes that no header counts
                self.write_header(f, (rows, *shape[1:]), dtype, offset)
            f.truncate(offset + rows * row_bytes)  # the rows dropped, and any uncounted bytes after them
        entries = entries[:kept]
        # Rewritten under another name, then renamed: a crash mid-write cannot take the finished rows' lines with it.
        partial = self.index.with_suffix(".jsonl.partial")
        partial.write_text("".join(json.dumps(e) + "\n" for e in entries))
        partial.replace(self.index)
        return entries

    def append(self, rows: np.ndarray, entries: list[dict]) -> None:
        """Rows first, then their index lines: a crash in between leaves rows that repair() drops."""
        rows = np.ascontiguousarray(rows)
        if len(rows) != sum(map(span, entries)):
            raise ValueError(f"{len(rows)} rows but index entries for {sum(map(span, entries))}")
        if not self.npy.exists():
            header = {"descr": npy.dtype_to_descr(rows.dtype), "fortran_order": False, "shape": (0, *rows.shape[1:])}
            with open(self.npy, "wb") as f:
                npy.write_array_header_1_0(f, header)
        with open(self.npy, "r+b") as f:
            shape, dtype, offset = self.header(f)
            if dtype != rows.dtype or shape[1:] != rows.shape[1:]:
                given = f"{rows.dtype} rows of {rows.shape[1:]}"
                raise ValueError(f"{self.npy} holds {dtype} rows of {shape[1:]}; these are {given}")
            f.seek(offset + shape[0] * self.row_bytes(shape, dtype))  # after the rows counted, whatever follows
            f.write(rows.tobytes())
            f.truncate()
            self.write_header(f, (shape[0] + len(rows), *shape[1:]), dtype, offset)
        with open(self.index, "a") as f:
            f.write("".join(json.dumps(e) + "\n" for e in entries))

    def grids(self) -> Iterator[tuple[dict | None, np.ndarray]]:
        """(index line, grid or row) for every row the file holds, in order; None for rows the index does not name
        (a .npy written by something else)."""
        rows, entries = np.load(self.npy, mmap_mode="r"), self.entries()
        if entries and "offset" in entries[0]:
            for entry in entries:
                yield (
                    entry,
                    np.asarray(rows[entry["offset"] : entry["offset"] + span(entry)]).reshape(
                        entry["height"], entry["width"]
                    ),
                )
            return
        for i, row in enumerate(rows):
            yield (entries[i] if i < len(entries) else None), np.asarray(row)

"""Exact tiles for size-free convolutional graphs: an input too large to run whole runs window by window, each
window a tile's own core plus a halo that covers the receptive field, and each tile keeps only its core's outputs.

A convolution's output at a position depends only on the inputs within its receptive field, so a core whose halo
covers that field sees exactly what it would see in the whole input; where a window meets the input's edge, it
meets it where the whole input does, and the padding is the same. Windows start on multiples of `align` (the
stride, for an encoder), so that every stride-2 stage cuts the window where it cuts the whole input. Every window
has one shape (the last ones along an axis move back inside the input and overlap the one before), so that the
tiles of every request share one shape and may be batched together.

The service (inference.py) and the offline pipeline (latentgen_bulk) both run their large inputs through this.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from contract.manifest import SizeFree


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window of input to run, and which of the window's outputs the tile keeps."""

    window: slice  # input units
    keep: slice  # output units, within the window's output
    into: slice  # output units, within the whole output


def spans(length: int, *, core: int, halo: int, align: int, scale: Fraction) -> list[Span]:
    """Tiles along an axis of `length` input units; a window is core + 2 * halo long (or the whole axis when that is
    shorter), and `scale` output units come out per input unit."""
    window = core + 2 * halo
    if length <= window:
        whole = slice(0, int(length * scale))
        return [Span(slice(0, length), whole, whole)]
    found = []
    for start in range(0, length, core):
        end = min(start + core, length)
        left = min(max(start - halo, 0), length - window)  # moved back inside the input at its far edge
        if left % align:
            raise ValueError(f"tile edges must fall on multiples of {align}: core {core}, halo {halo}")
        keep = slice(int((start - left) * scale), int((end - left) * scale))
        found.append(Span(slice(left, left + window), keep, slice(int(start * scale), int(end * scale))))
    return found


@dataclass(frozen=True)
class TilePlan:
    """The tiles of inputs (..., H, W): `windows` to run, and `place` to put each tile's outputs into the whole."""

    height: int
    width: int
    core: int
    halo: int
    align: int
    scale: Fraction  # output units per input unit on each side: 1/stride for an encoder, stride for a decoder

    @property
    def single(self) -> bool:
        """True when the whole input is one window: it runs as it is."""
        return max(self.height, self.width) <= self.core + 2 * self.halo

    def tiles(self) -> Iterator[tuple[Span, Span]]:
        options = {"core": self.core, "halo": self.halo, "align": self.align, "scale": self.scale}
        for rows in spans(self.height, **options):
            for cols in spans(self.width, **options):
                yield rows, cols

    def window(self, array: np.ndarray, tile: tuple[Span, Span]) -> np.ndarray:
        rows, cols = tile
        return np.ascontiguousarray(array[..., rows.window, cols.window])

    def place(self, outputs: list[np.ndarray] | None, parts: list[np.ndarray], tile: tuple[Span, Span]) -> list:
        """Copies the tile's core of every output into the whole outputs (made at the first tile) and returns them."""
        rows, cols = tile
        if outputs is None:
            size = (int(self.height * self.scale), int(self.width * self.scale))
            outputs = [np.empty((*part.shape[:-2], *size), part.dtype) for part in parts]
        for whole, part in zip(outputs, parts, strict=True):
            whole[..., rows.into, cols.into] = part[..., rows.keep, cols.keep]
        return outputs

    def run(self, array: np.ndarray, run: Callable[[np.ndarray], list[np.ndarray]]) -> list[np.ndarray]:
        """`run`'s outputs for the whole of `array`, one window at a time (or the whole input when it fits one)."""
        if self.single:
            return run(array)
        outputs = None
        for tile in self.tiles():
            outputs = self.place(outputs, run(self.window(array, tile)), tile)
        return outputs


def graph_plan(sizes: SizeFree, graph: str, shape: Sequence[int], tile_size: int) -> TilePlan:
    """The tiles of a size-free model's encoder (an image's (H, W), in pixels) or decoder (a grid's (h, w), in
    codes), for tiles of about `tile_size` pixels a side (rounded down to whole codes, one at least)."""
    codes, (height, width) = max(1, tile_size // sizes.stride), shape
    if graph == "encoder":
        return TilePlan(
            height, width, core=codes * sizes.stride, halo=sizes.encoder_halo, align=sizes.stride,
            scale=Fraction(1, sizes.stride),
        )  # fmt: skip
    return TilePlan(height, width, core=codes, halo=sizes.decoder_halo, align=1, scale=Fraction(sizes.stride))

"""Ancestral sampling of code grids from an autoregressive prior, in raster order.

Each sample draws from its own random stream, seeded by (seed + index), so a sample's codes do
not depend on how many others were drawn beside it or how requests were batched. Completion
(inpainting in code space) samples only the masked positions and keeps the others as given.
Seeds, temperature, top-k and guidance may also be given per row (arrays of length N): that is how the
rows of several requests, merged into one run, each keep their own.

Classifier-free guidance (Ho & Salimans 2021) needs a prior that also learnt "no label" (label dropout): each
guided row runs beside an unlabelled twin, and draws from (1 + w) x its logits - w x its twin's, which sharpens
p(codes | label) towards codes the label explains; the twin takes the same code. Guidance 0 is plain sampling.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from contract.errors import ClientDisconnectedError

# (codes (N, h, w) int64, labels (N,) int64 or None) -> logits (N, K, h, w)
PriorFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
StopFn = Callable[[], bool]


def check(should_stop: StopFn | None) -> None:
    if should_stop is not None and should_stop():
        raise ClientDisconnectedError("the client went away; sampling stopped")


Seeds = int | np.ndarray  # one seed (row i uses seed + i) or one per row
Temperature = float | np.ndarray
TopK = int | None | np.ndarray  # None or 0: every code
Guidance = float | np.ndarray  # w >= 0 (0: none)


@dataclass
class RowSettings:
    streams: list[np.random.Generator]
    temperature: np.ndarray  # (N,) float64
    top_k: np.ndarray  # (N,) int64, 0 for every code

    @classmethod
    def of(cls, n: int, seed: Seeds, temperature: Temperature, top_k: TopK) -> "RowSettings":
        seeds = seed + np.arange(n) if np.ndim(seed) == 0 else np.asarray(seed)
        return cls(
            [np.random.default_rng(int(s)) for s in seeds],
            np.broadcast_to(np.asarray(temperature, np.float64), (n,)),
            np.broadcast_to(np.asarray(0 if top_k is None else top_k, np.int64), (n,)),
        )


def any_classes(
    seeds: np.ndarray, num_classes: int, frequencies: Sequence[float] | None = None, *, stratified: bool = False
) -> np.ndarray:
    """A class for each sample, uniform or with the given chances, from a stream of its own seed apart from its codes'
    stream: sampling the joint p(class) p(codes | class), whose codes are a draw from the whole prior, the mixture
    of the classes (weighted as the training images' classes are, when `frequencies` are theirs).

    Stratified, the seeds fall in blocks of K = `num_classes` (seeds bK to bK + K - 1) whose seeds take the K equal
    slices of [0, 1) in an order drawn for the block, and each its class at a point of its slice: every seed's class
    still has the given chances, and a block of uniform draws holds every class once, as the labelled samples that
    the sampling defaults are chosen on do (with chances, the classes' shares stray far less than independent
    draws')."""
    seeds = [int(s) for s in seeds]
    if stratified:
        orders = {
            block: np.random.default_rng([block, 2]).permutation(num_classes)
            for block in {s // num_classes for s in seeds}
        }
        slices = np.array([orders[s // num_classes][s % num_classes] for s in seeds], np.int64)
        if frequencies is None:
            return slices
        points = (slices + [np.random.default_rng([s, 1]).random() for s in seeds]) / num_classes
    elif frequencies is None:
        return np.array([np.random.default_rng([s, 1]).integers(num_classes) for s in seeds], np.int64)
    else:
        points = np.array([np.random.default_rng([s, 1]).random() for s in seeds])
    bounds = np.cumsum(frequencies)
    drawn = np.searchsorted(bounds, points * bounds[-1], side="right")
    return np.minimum(drawn, num_classes - 1).astype(np.int64)


def probabilities(logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray) -> np.ndarray:
    """Logits (N, K) -> probabilities (N, K) after each row's temperature and top-k filtering."""
    scaled = logits.astype(np.float64) / temperature[:, None]
    for k in np.unique(top_k[(top_k > 0) & (top_k < scaled.shape[1])]):
        rows = top_k == k
        kth = np.partition(scaled[rows], -k, axis=1)[:, -k, None]
        scaled[rows] = np.where(scaled[rows] >= kth, scaled[rows], -np.inf)
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def draw(probs: np.ndarray, streams: list[np.random.Generator]) -> np.ndarray:
    """One category per row by inverse-CDF sampling with each row's own uniform draw."""
    uniform = np.array([stream.random() for stream in streams])
    index = (np.cumsum(probs, axis=1) < uniform[:, None]).sum(axis=1)
    return np.minimum(index, probs.shape[1] - 1)


def draw_rows(logits: np.ndarray, rows: np.ndarray, settings: RowSettings) -> np.ndarray:
    """Draws for the selected rows only: only rows that sample here consume a random number, so
    each sample's stream is independent of the others'."""
    probs = probabilities(logits, settings.temperature[rows], settings.top_k[rows])
    return draw(probs, [settings.streams[r] for r in np.flatnonzero(rows)])


# (logits (n, K) of the rows filled at (i, j), those rows as an (N,) mask, i, j) -> their codes (n,)
PickFn = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


@dataclass
class GuidedRun:
    """The rows a guided run computes: the N rows asked for, then an unlabelled twin of each guided one."""

    codes: np.ndarray  # (N + T, h, w)
    mask: np.ndarray  # (N + T, h, w)
    labels: np.ndarray | None  # (N + T,)
    rows: int  # N
    guided: np.ndarray  # (T,) the rows with twins; row guided[t]'s twin is row N + t
    weights: np.ndarray  # (T,) their guidance

    @classmethod
    def of(
        cls, codes: np.ndarray, mask: np.ndarray, labels: np.ndarray | None, guidance: Guidance, no_label: int | None
    ) -> "GuidedRun":
        n = len(codes)
        weights = np.broadcast_to(np.asarray(guidance, np.float64), (n,))
        if labels is None or no_label is None:
            if (weights > 0).any():
                raise ValueError("guidance needs labels and a prior that learnt 'no label'")
            return cls(codes, mask, labels, n, np.zeros(0, np.int64), np.zeros(0))
        guided = np.flatnonzero((weights > 0) & (labels != no_label))  # an unlabelled row has nothing to guide
        return cls(
            np.concatenate([codes, codes[guided]]),
            np.concatenate([mask, mask[guided]]),
            np.concatenate([labels, np.full(len(guided), no_label, labels.dtype)]),
            n,
            guided,
            weights[guided],
        )

    def pick(self, pick: PickFn) -> PickFn:
        """`pick` for the N rows, on guided logits; each twin takes its row's code."""
        n, guided = self.rows, self.guided
        if not len(guided):
            return pick

        def twin_pick(logits: np.ndarray, rows: np.ndarray, i: int, j: int) -> np.ndarray:
            every = np.zeros((len(rows), logits.shape[1]), logits.dtype)
            every[rows] = logits
            mixed, here = every[:n], rows[guided]  # a twin fills where its row does (the same mask)
            weight = self.weights[here, None]
            mixed[guided[here]] = (1 + weight) * every[guided[here]] - weight * every[n + np.flatnonzero(here)]
            codes = np.zeros(len(rows), np.int64)
            own = rows[:n]
            codes[:n][own] = pick(mixed[own], own, i, j)
            codes[n:] = codes[guided]
            return codes[rows]

        return twin_pick


def guided_draws(
    codes: np.ndarray,
    mask: np.ndarray,
    seed: Seeds,
    temperature: Temperature,
    top_k: TopK,
    labels: np.ndarray | None,
    guidance: Guidance,
    no_label: int | None,
) -> tuple[GuidedRun, PickFn]:
    """The rows a sampling run computes (guided rows' twins included) and the draw at each position."""
    settings = RowSettings.of(len(codes), seed, temperature, top_k)
    run = GuidedRun.of(codes, mask, labels, guidance, no_label)
    return run, run.pick(lambda logits, rows, i, j: draw_rows(logits, rows, settings))


def sample_codes(
    prior: PriorFn,
    codes: np.ndarray,
    mask: np.ndarray,
    seed: Seeds,
    temperature: Temperature = 1.0,
    top_k: TopK = None,
    labels: np.ndarray | None = None,
    should_stop: StopFn | None = None,
    guidance: Guidance = 0.0,
    no_label: int | None = None,
) -> np.ndarray:
    """Fills the positions where `mask` (N, h, w) is True, in raster order; returns the grids. Runs the whole prior
    at every position. `should_stop` is asked before every step; when it says yes, ClientDisconnectedError ends
    the work."""
    run, pick = guided_draws(codes, mask, seed, temperature, top_k, labels, guidance, no_label)
    filled = run.codes.astype(np.int64, copy=True)
    h, w = filled.shape[1:]
    for i in range(h):
        for j in range(w):
            rows = run.mask[:, i, j]
            if not rows.any():
                continue
            check(should_stop)
            logits = prior(filled, run.labels)[rows, :, i, j]
            filled[rows, i, j] = pick(logits, rows, i, j)
    return filled[: len(codes)]


@dataclass
class CachedPrior:
    """A gated PixelCNN split into a row step and a position step (Fast PixelCNN, Ramachandran
    et al. 2017): the caller keeps each layer's activations, so each step computes only what the
    newest code changes and a whole grid costs about one full forward pass."""

    # (codes_above (N, half, W), v_above (L-1, N, C, half, W), labels) -> v_row (L, N, 2C, W), out_v_row (L-1, N, C, W)
    row: Callable[[np.ndarray, np.ndarray, np.ndarray | None], list[np.ndarray]]
    # (codes_left (N, half), h_left (L-1, N, C, half), v_here (L, N, 2C), labels) -> logits (N, K), h_here (L-1, N, C)
    position: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], list[np.ndarray]]
    num_codes: int  # K; the code K marks "outside the grid"
    layers: int
    channels: int
    half: int  # kernel // 2


def sample_codes_cached(
    prior: CachedPrior,
    codes: np.ndarray,
    mask: np.ndarray,
    seed: Seeds,
    temperature: Temperature = 1.0,
    top_k: TopK = None,
    labels: np.ndarray | None = None,
    should_stop: StopFn | None = None,
    guidance: Guidance = 0.0,
    no_label: int | None = None,
) -> np.ndarray:
    """The same draws as sample_codes (same seeds, same codes), at the cost of about one forward pass (two for a
    guided row)."""
    run, pick = guided_draws(codes, mask, seed, temperature, top_k, labels, guidance, no_label)
    return fill_codes_cached(prior, run.codes, run.mask, pick, run.labels, should_stop)[: len(codes)]


def first_row(
    prior: CachedPrior, codes_above: np.ndarray, v_above: np.ndarray, labels: np.ndarray | None
) -> list[np.ndarray]:
    """The row step at row 0, run once per distinct label and copied to the rows that share it: above row 0 lies
    only padding, so its activations depend on the label alone (a seventh of the row steps on a 7x7 grid)."""
    if labels is None:
        first, rows, distinct = np.zeros(1, np.int64), np.zeros(len(codes_above), np.int64), None
    else:
        distinct, first, rows = np.unique(labels, return_index=True, return_inverse=True)
    outputs = prior.row(codes_above[first], v_above[:, first], distinct)
    return [output[:, rows] for output in outputs]


def fill_codes_cached(
    prior: CachedPrior,
    codes: np.ndarray,
    mask: np.ndarray,
    pick: PickFn,
    labels: np.ndarray | None = None,
    should_stop: StopFn | None = None,
) -> np.ndarray:
    """Fills the positions where `mask` (N, h, w) is True, in raster order, with what `pick` makes of the prior's
    logits there (a draw when sampling; training's guided codes weigh them against a distortion)."""
    n, h, w = codes.shape
    half, layers, channels = prior.half, prior.layers, prior.channels
    # Codes padded with K ("outside the grid") above and to the left. Each step reads only the `half` rows (or
    # positions) before it, so the caches keep just those: a rolling window, zeros outside the grid, laid out
    # position-major so that a step's window is one slice with no per-step padding or strided copies.
    padded = np.full((n, half + h, half + w), prior.num_codes, np.int64)
    padded[:, half:, half:] = codes
    vertical = np.zeros((half, layers - 1, n, channels, w), np.float32)  # layer inputs at the rows above row i
    for i in range(h):
        codes_above = np.ascontiguousarray(padded[:, i : i + half, half:])
        v_above = np.ascontiguousarray(np.moveaxis(vertical, 0, 3))  # (L-1, N, C, half, W)
        if i == 0:
            v_row, out_v_row = first_row(prior, codes_above, v_above, labels)
        else:
            v_row, out_v_row = prior.row(codes_above, v_above, labels)
        vertical = np.concatenate([vertical[1:], out_v_row[None]])
        v_columns = np.ascontiguousarray(np.moveaxis(v_row, 3, 0))  # (W, L, N, 2C)
        del v_row
        horizontal = np.zeros((half, layers - 1, n, channels), np.float32)  # layer inputs left of (i, j)
        for j in range(w):
            check(should_stop)
            codes_left = np.ascontiguousarray(padded[:, half + i, j : j + half])
            h_left = np.ascontiguousarray(np.moveaxis(horizontal, 0, 3))  # (L-1, N, C, half)
            logits, h_here = prior.position(codes_left, h_left, v_columns[j], labels)
            horizontal = np.concatenate([horizontal[1:], h_here[None]])
            rows = mask[:, i, j]
            if rows.any():
                padded[rows, half + i, half + j] = pick(logits[rows], rows, i, j)
    return padded[:, half:, half:].copy()

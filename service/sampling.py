"""Ancestral sampling of code grids from an autoregressive prior, in raster order.

Each sample draws from its own random stream, seeded by (seed + index), so a sample's codes do
not depend on how many others were drawn beside it or how requests were batched. Completion
(inpainting in code space) samples only the masked positions and keeps the others as given.
"""

from collections.abc import Callable

import numpy as np

# (codes (N, h, w) int64, labels (N,) int64 or None) -> logits (N, K, h, w)
PriorFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def sample_streams(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(seed + i) for i in range(n)]


def probabilities(logits: np.ndarray, temperature: float, top_k: int | None) -> np.ndarray:
    """Logits (N, K) -> probabilities (N, K) after temperature and top-k filtering."""
    scaled = logits.astype(np.float64) / temperature
    if top_k and top_k < scaled.shape[1]:
        kth = np.partition(scaled, -top_k, axis=1)[:, -top_k, None]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def draw(probs: np.ndarray, streams: list[np.random.Generator]) -> np.ndarray:
    """One category per row by inverse-CDF sampling with each row's own uniform draw."""
    uniform = np.array([stream.random() for stream in streams])
    index = (np.cumsum(probs, axis=1) < uniform[:, None]).sum(axis=1)
    return np.minimum(index, probs.shape[1] - 1)


def sample_codes(
    prior: PriorFn,
    codes: np.ndarray,
    mask: np.ndarray,
    seed: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Fills the positions where `mask` (N, h, w) is True, in raster order; returns the grids."""
    codes = codes.astype(np.int64, copy=True)
    streams = sample_streams(seed, len(codes))
    h, w = codes.shape[1:]
    for i in range(h):
        for j in range(w):
            rows = mask[:, i, j]
            if not rows.any():
                continue
            logits = prior(codes, labels)[rows, :, i, j]
            # Only the rows that sample here consume a draw, so each stream is independent of the others.
            codes[rows, i, j] = draw(
                probabilities(logits, temperature, top_k), [streams[r] for r in np.flatnonzero(rows)]
            )
    return codes

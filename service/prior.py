"""A package's PixelCNN prior as numpy functions, and one run of ancestral sampling with it: what the model's sample
batcher runs (package.py), on the rows of every request it merged.

The run is unbatched and calls the graphs directly: concurrent sample requests are merged one level up, whole, into
one run whose rows keep their own seeds, temperatures, top-k and guidance. Merging whole requests beats merging their
steps: a run of many rows costs little more than one of a single row, and no step waits on another thread. A sample
request itself, its checks and defaults, is sampling.py's.
"""

from typing import Protocol

import numpy as np

from contract.manifest import Manifest
from contract.sampling import CachedPrior, StopFn, sample_codes, sample_codes_cached


class PriorGraphs(Protocol):
    """What sampling needs of a loaded model (package.LoadedModel): its manifest and a way to run a graph."""

    manifest: Manifest

    def run_now(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


# The feeds of one sampling run, all (N, ...) row-aligned; `labels` only for a class-conditional prior.
SAMPLE_INPUTS = ("codes", "mask", "seeds", "temperature", "top_k", "guidance")


def graph_call(model: PriorGraphs, graph: str, *names: str):
    """A function of the graph's inputs in the given order (a trailing None label is left out)."""

    def call(*arrays: np.ndarray | None):
        feeds = {name: array for name, array in zip(names, arrays, strict=True) if array is not None}
        outputs = model.run_now(graph, feeds)
        return outputs[0] if len(outputs) == 1 else outputs

    return call


def onnx_steps(model: PriorGraphs) -> CachedPrior | None:
    """The Fast PixelCNN steps when the package carries them (see training/models/pixelcnn_steps.py)."""
    graphs = model.manifest.graphs
    if "prior_row" not in graphs or "prior_position" not in graphs:
        return None
    v_above = next(t for t in graphs["prior_row"].inputs if t.name == "v_above").shape  # (L-1, N, C, half, W)
    return CachedPrior(
        row=graph_call(model, "prior_row", "codes_above", "v_above", "labels"),
        position=graph_call(model, "prior_position", "codes_left", "h_left", "v_here", "labels"),
        num_codes=model.manifest.num_codes,
        layers=v_above[0] + 1,
        channels=v_above[2],
        half=v_above[3],
    )


def draw_codes(model: PriorGraphs, feeds: dict[str, np.ndarray], should_stop: StopFn | None = None) -> np.ndarray:
    """Fills the masked positions of feeds["codes"] (N, h, w); every row with its own seed, temperature, top-k and
    guidance."""
    codes, mask, seeds, temperature, top_k, guidance = (feeds[name] for name in SAMPLE_INPUTS)
    given = {
        "labels": feeds.get("labels"),
        "should_stop": should_stop,
        "guidance": guidance,
        "no_label": model.manifest.no_label,
    }
    if cached := onnx_steps(model):
        return sample_codes_cached(cached, codes, mask, seeds, temperature, top_k, **given)
    return sample_codes(graph_call(model, "prior", "codes", "labels"), codes, mask, seeds, temperature, top_k, **given)

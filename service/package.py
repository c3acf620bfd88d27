"""One model package opened: its manifest and files verified (sha256), one onnxruntime session per graph warmed
up, its batchers attached. A package that fails any of it raises, with the reason; registry.py keeps the reasons.
A size-free model's encoder and decoder run their inputs in tiles (contract/tiling.py), whatever asks for them.
"""

import asyncio
import logging
import math
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from starlette.concurrency import run_in_threadpool

from contract.manifest import Manifest, TensorSpec, read_manifest, verify_files
from contract.tiling import TilePlan, graph_plan
from service.batching import Batcher, Feeds, RunFn, StopFn, UnitsFn
from service.config import Settings
from service.metrics import BATCH_SIZE, INFERENCE
from service.prior import SAMPLE_INPUTS, draw_codes

log = logging.getLogger("service.package")
GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
SIZE_FREE_GRAPHS = ("encoder", "decoder")  # a size-free package's graphs that take any height and width
Prepare = Callable[[np.ndarray], Feeds]  # a window of the tiled input -> the graph's feeds


@dataclass
class LoadedModel:
    manifest: Manifest
    folder: Path
    sessions: dict[str, ort.InferenceSession]  # graph name -> session
    provider: str  # the execution provider onnxruntime actually chose
    codebook: np.ndarray | None = None  # (K, D), vqvae only
    code_penalty: np.ndarray | None = None  # (K,), added to each code's squared distance (entropy-constrained VQ)
    batchers: dict[str, Batcher] = field(default_factory=dict)  # graph name -> its dynamic batcher
    tile_size: int = 512  # pixels a side of a size-free model's tiles (TILE_SIZE)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> int:
        return self.manifest.version

    def tile_plan(self, graph: str, array: np.ndarray) -> TilePlan | None:
        """How a size-free model's encoder (pixels) or decoder (codes) runs `array` (..., H, W): in tiles, one
        for an input no larger than a tile; None for the other graphs and models."""
        if self.manifest.size_free is None or graph not in SIZE_FREE_GRAPHS:
            return None
        return graph_plan(self.manifest.size_free, graph, array.shape[-2:], self.tile_size)

    def steps(self, graph: str, feeds: Feeds, prepare: Prepare | None) -> tuple[TilePlan | None, Iterable[tuple]]:
        """What to run for these feeds: (tile, its feeds) in order, tile None when the input runs whole. With
        `prepare`, `feeds` holds one array whose windows it turns into the graph's feeds (codes into z_q)."""
        (name, array), plan = next(iter(feeds.items())), self.tile_plan(graph, next(iter(feeds.values())))
        prepare = prepare or (lambda window: {name: window})
        if plan is None or plan.single:
            return None, [(None, prepare(array) if len(feeds) == 1 else feeds)]
        return plan, ((tile, prepare(plan.window(array, tile))) for tile in plan.tiles())  # one window at a time

    def run(self, graph: str, feeds: Feeds, prepare: Prepare | None = None) -> list[np.ndarray]:
        """One inference, merged with concurrent ones for the same graph when batching is on; a size-free graph's
        large input tile by tile (`steps`)."""
        plan, steps = self.steps(graph, feeds, prepare)
        outputs = None
        for tile, tile_feeds in steps:
            parts = self.run_whole(graph, tile_feeds)
            outputs = parts if tile is None else plan.place(outputs, parts, tile)
        return outputs

    async def run_async(self, graph: str, feeds: Feeds, prepare: Prepare | None = None) -> list[np.ndarray]:
        """`run` for the event loop: awaits each batch instead of blocking a worker thread on it."""
        plan, steps = self.steps(graph, feeds, prepare)
        outputs = None
        for tile, tile_feeds in steps:
            parts = await self.run_whole_async(graph, tile_feeds)
            outputs = parts if tile is None else plan.place(outputs, parts, tile)
        return outputs

    def run_whole(self, graph: str, feeds: Feeds) -> list[np.ndarray]:
        if graph in self.batchers:
            return self.batchers[graph](feeds)
        BATCH_SIZE.labels(self.id, graph).observe(len(next(iter(feeds.values()))))
        return self.run_now(graph, feeds)

    async def run_whole_async(self, graph: str, feeds: Feeds) -> list[np.ndarray]:
        if graph in self.batchers:
            return await self.batchers[graph].submit(feeds, loop=asyncio.get_running_loop())
        return await run_in_threadpool(self.run_whole, graph, feeds)

    def run_now(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with INFERENCE.labels(self.id, graph).time():
            return self.sessions[graph].run(None, feeds)

    def expecting(self, graph: str) -> AbstractContextManager[None]:
        """Tell the graph's batcher that this request will submit soon (see batching.py)."""
        return self.batchers[graph].expect() if graph in self.batchers else nullcontext()

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()


@dataclass
class UnavailableModel:
    id: str
    version: int | None
    folder: Path
    reason: str


def preload_cuda(providers: list[str]) -> None:
    """onnxruntime-gpu's CUDA and cuDNN may come as NVIDIA's wheels (the GPU image): load them before the first
    session asks for them. Where they are missing, or no GPU is there, the sessions fall back to the CPU and say
    so (readiness reports the provider in use)."""
    if "CUDAExecutionProvider" in providers and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as error:  # a partial CUDA install must not stop the CPU fallback
            log.warning("could not preload CUDA libraries: %s", error)


def choose_providers(setting: str) -> list[str]:
    available = ort.get_available_providers()
    if setting == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    wanted = [p.strip() for p in setting.split(",") if p.strip()]
    if unknown := [p for p in wanted if p not in available]:
        raise ValueError(f"PROVIDERS names {unknown}, but this onnxruntime offers only {available}")
    return wanted


def default_intra_op_threads() -> int:
    """Every core this process may use but one: that one stays with the event loop (HTTP, image decoding,
    JSON), which otherwise fights onnxruntime's threads for it: on 2 cores one thread cut the HTTP path's CPU
    per request, and only a lone large batch runs slower (docs/experiments/2026-11-27-serving-path.md)."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


def session_options(settings: Settings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.INTRA_OP_THREADS or default_intra_op_threads()
    options.inter_op_num_threads = 1
    # Spinning threads burn the cores that the HTTP workers need; without it latency is steadier.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = settings.ORT_CPU_ARENA  # memory.py says why it is off by default
    return options


def dummy_input(manifest: Manifest, graph: str, spec: TensorSpec) -> np.ndarray:
    """A warm-up input: one row, and a size-free graph's height and width those of the training size."""
    shape = [1 if d < 0 else d for d in spec.shape]
    if manifest.size_free and graph in SIZE_FREE_GRAPHS:
        shape[-2:] = manifest.image_shape[1:] if graph == "encoder" else manifest.latent_shape[1:]
    return np.zeros(shape, dtype=np.float32 if spec.dtype == "float32" else np.int64)


def load_array(folder: Path, name: str, shape: tuple, manifest: Manifest) -> np.ndarray | None:
    """A float32 array file of the package, checked against its shape; None when the package has none."""
    if name not in manifest.files:
        return None
    array = np.load(folder / name)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {list(array.shape)}; the manifest implies {list(shape)}")
    return array.astype(np.float32)


def graph_shape(manifest: Manifest, graph: str, tensor: str) -> list[int] | None:
    spec = manifest.graphs.get(graph)
    found = [t.shape for t in (spec.inputs + spec.outputs if spec else []) if t.name == tensor]
    return found[0] if found else None


def check_servable(manifest: Manifest) -> None:
    """What the service itself needs of a package's shapes: images it can decode and encode as PNG, and graphs
    whose tensors agree with the manifest's image and latent shapes."""
    channels, height, width = manifest.image_shape
    if channels not in (1, 3) or height < 1 or width < 1:
        raise ValueError(f"image shape {list(manifest.image_shape)}: the service serves 1 or 3 channels of H, W >= 1")
    free = manifest.size_free is not None  # the encoder's and decoder's heights and widths are -1
    image = [-1, channels, *([-1, -1] if free else [height, width])]
    expected = {("encoder", "image"): image, ("decoder", "image"): image}
    if manifest.kind == "vqvae":
        d, h, w = manifest.latent_shape
        grid = [-1, -1] if free else [h, w]
        expected |= {("encoder", "codes"): [-1, *grid], ("decoder", "z_q"): [-1, d, *grid]}
        if manifest.prior is not None:
            expected[("prior", "logits")] = [-1, manifest.num_codes, h, w]
    else:
        expected |= {("encoder", "mean"): [-1, *manifest.latent_shape], ("decoder", "z"): [-1, *manifest.latent_shape]}
    for (graph, tensor), shape in expected.items():
        if graph_shape(manifest, graph, tensor) != shape:
            found = graph_shape(manifest, graph, tensor)
            raise ValueError(f"{graph}.{tensor} has shape {found}; the manifest's shapes imply {shape}")


def open_package(folder: Path, settings: Settings, providers: list[str]) -> LoadedModel:
    """Validates the package, opens one session per graph and warms each up once."""
    manifest = read_manifest(folder)
    where = f"{folder.parent.name}/{folder.name}"
    if f"{manifest.id}/{manifest.version}" != where:
        raise ValueError(f"manifest names {manifest.id}/{manifest.version} but lives in {where}")
    check_servable(manifest)
    verify_files(folder, manifest)
    options = session_options(settings)
    sessions = {}
    for name, graph in manifest.graphs.items():
        session = ort.InferenceSession(str(folder / graph.file), sess_options=options, providers=providers)
        session.run(None, {spec.name: dummy_input(manifest, name, spec) for spec in graph.inputs})  # warm-up
        sessions[name] = session
    provider = next(iter(sessions.values())).get_providers()[0]
    codebook = load_array(folder, "codebook.npy", (manifest.num_codes, manifest.code_dim), manifest)
    penalty = load_array(folder, "code_penalty.npy", (manifest.num_codes,), manifest)
    model = LoadedModel(manifest, folder, sessions, provider, codebook, penalty, tile_size=settings.TILE_SIZE)
    if settings.MAX_BATCH_SIZE > 1:
        model.batchers = {name: graph_batcher(model, name, settings) for name in sessions}
        if "prior" in sessions:
            model.batchers["sample"] = sample_batcher(model, settings)
    return model


def batch_delay(settings: Settings, provider: str) -> float:
    """Seconds a forming batch may wait for announced requests (config.py says why it depends on the provider)."""
    if settings.BATCH_DELAY_MS is not None:
        return settings.BATCH_DELAY_MS / 1000
    return 0.005 if provider in GPU_PROVIDERS else 0.0


def batcher(
    model: LoadedModel,
    name: str,
    run: RunFn,
    input_axes: dict[str, int],
    output_axes: list[int],
    settings: Settings,
    row_units: UnitsFn | None = None,
) -> Batcher:
    return Batcher(
        run,
        input_axes,
        output_axes,
        max_batch=settings.MAX_BATCH_SIZE,
        max_delay=batch_delay(settings, model.provider),
        max_queue=settings.MAX_QUEUE_ROWS,
        labels=(model.id, name),
        row_units=row_units,
    )


def size_free_units(model: LoadedModel, graph: str) -> UnitsFn | None:
    """What one row of a size-free graph counts for: the training-size images (or code grids) its area makes up."""
    if model.manifest.size_free is None or graph not in SIZE_FREE_GRAPHS:
        return None
    trained = math.prod(model.manifest.image_shape[1:] if graph == "encoder" else model.manifest.latent_shape[1:])

    def units(feeds: Feeds) -> int:
        return -(-math.prod(next(iter(feeds.values())).shape[-2:]) // trained)

    return units


def graph_batcher(model: LoadedModel, graph: str, settings: Settings) -> Batcher:
    spec = model.manifest.graphs[graph]
    input_axes = {t.name: t.shape.index(-1) for t in spec.inputs}
    output_axes = [t.shape.index(-1) for t in spec.outputs]
    run = lambda feeds, _: model.run_now(graph, feeds)  # noqa: E731
    return batcher(model, graph, run, input_axes, output_axes, settings, size_free_units(model, graph))


def sample_batcher(model: LoadedModel, settings: Settings) -> Batcher:
    """Whole sample requests merged into one sampling run (see prior.py); named "sample" in the metrics."""
    names = [*SAMPLE_INPUTS, *(["labels"] if model.manifest.prior.conditional else [])]

    def run(feeds: Feeds, should_stop: StopFn) -> list[np.ndarray]:
        return [draw_codes(model, feeds, should_stop)]

    return batcher(model, "sample", run, dict.fromkeys(names, 0), [0], settings)

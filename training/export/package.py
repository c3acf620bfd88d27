"""Export a trained model as a model package (`python -m training export ...`).

A VQ-VAE and its prior become encoder.onnx, decoder.onnx, prior.onnx (+ the Fast PixelCNN step graphs, whose
weights are the prior's: shared_weights.bin holds them once), codebook.npy and samples.png (a VAE:
export/vae.py). Every graph is checked against torch with onnxruntime; manifest.json describes the package.
It appears atomically: assembled in a hidden folder, then renamed into place.
"""

import io
import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from contract.manifest import (
    MANIFEST_FILE,
    MODEL_ID_RULE,
    GraphSpec,
    Manifest,
    Provenance,
    TensorSpec,
    is_model_id,
    sha256_file,
)
from training.data import DataOptions, load_splits
from training.export.shared_weights import share_tensors
from training.models.pixelcnn_steps import LAYER_MAJOR

PARITY_TOLERANCE = 1e-4
NOT_EVALUATED = "not evaluated: exported without an evaluation report (latentgen-train evaluate, then --evaluation)"


def read_evaluation(path: str) -> dict:
    if not path:
        return {}
    if not Path(path).is_file():
        raise FileNotFoundError(f"--evaluation {path}: no such report; run `latentgen-train evaluate`, or omit it")
    return json.loads(Path(path).read_text())


class ParityError(RuntimeError):
    pass


@dataclass
class ExportOptions(DataOptions):  # the data's validation images drive the parity check
    vqvae: str = "runs/vqvae/best.pt"
    prior: str = "runs/prior/best.pt"
    vae: str = ""  # export this VAE checkpoint instead of a VQ-VAE and its prior (export/vae.py)
    evaluation: str = ""  # the report of `latentgen-train evaluate`; without one the manifest says: not evaluated
    out: str = "exported_models"
    id: str = "mnist-vqvae"
    version: int = 0  # 0: one above the newest existing version
    opset: int = 17
    dynamo: bool = False  # torch.onnx's dynamo exporter (with --opset 18); the legacy one folds the PixelCNN masks
    hardware: str = "unknown"  # what the model was trained on, for the manifest
    description: str = ""
    seed: int = 0


def batch_axis(name: str) -> int:
    return 1 if name in LAYER_MAJOR else 0


class GraphExample(NamedTuple):
    """A graph to export: its module, example inputs, the names of its outputs, and, for a size-free graph, more
    examples at other heights and widths (every input and output then has free last two axes)."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    other_sizes: tuple[dict[str, torch.Tensor], ...] = ()


def free_axes(name: str, rank: int, size_free: bool) -> dict[int, str]:
    """The axes of a tensor that any size may take: the batch, and a size-free graph's last two (height, width)."""
    spatial = {rank - 2: f"{name}_height", rank - 1: f"{name}_width"} if size_free else {}
    return {batch_axis(name): "batch"} | spatial


def tensor_spec(name: str, example: torch.Tensor, size_free: bool) -> TensorSpec:
    dtype = {torch.float32: "float32", torch.int64: "int64"}[example.dtype]
    shape = list(example.shape)
    for axis in free_axes(name, example.dim(), size_free):
        shape[axis] = -1
    return TensorSpec(name=name, dtype=dtype, shape=shape)


def export_graph(graph: GraphExample, path: Path, options: ExportOptions) -> GraphSpec:
    """Exports with a dynamic batch axis on every input and output (and free heights and widths if size-free)."""
    module, size_free = graph.module.eval(), bool(graph.other_sizes)
    with torch.no_grad():
        outputs = module(*graph.inputs.values())
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    examples = graph.inputs | dict(zip(graph.outputs, outputs, strict=True))
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (it folds the PixelCNN masks); skip its deprecation notice.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding")  # strided slices stay in the graph; harmless
        torch.onnx.export(
            module,
            tuple(graph.inputs.values()),
            str(path),
            input_names=list(graph.inputs),
            output_names=graph.outputs,
            dynamic_axes={name: free_axes(name, t.dim(), size_free) for name, t in examples.items()},
            opset_version=options.opset,
            dynamo=options.dynamo,
        )
    return GraphSpec(
        file=path.name,
        inputs=[tensor_spec(n, examples[n], size_free) for n in graph.inputs],
        outputs=[tensor_spec(n, examples[n], size_free) for n in graph.outputs],
    )


def max_differences(
    module: nn.Module, path: Path, inputs: dict[str, torch.Tensor], output_names: list[str]
) -> dict[str, float]:
    """Runs torch and onnxruntime on the same inputs; max |difference| per output."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(output_names, {n: t.numpy() for n, t in inputs.items()})
    with torch.no_grad():
        expected = module(*inputs.values())
    expected = expected if isinstance(expected, tuple) else (expected,)
    differences = {}
    for name, ours, theirs in zip(output_names, expected, got, strict=True):
        if ours.dtype == torch.int64:
            differences[name] = float((ours.numpy() != theirs).sum())  # integer outputs must match exactly
            if differences[name]:
                raise ParityError(f"{path.name}: {name} differs at {differences[name]:.0f} positions")
        else:
            differences[name] = float(np.abs(ours.numpy() - theirs).max())
            if differences[name] > PARITY_TOLERANCE:
                raise ParityError(f"{path.name}: {name} differs by {differences[name]:.2e} > {PARITY_TOLERANCE}")
    return differences


def git_commit() -> str:
    """The checkout's commit, "+dirty" with uncommitted changes; "unknown" outside a checkout or without git (an
    image)."""

    def git(*args: str) -> str:
        try:
            run = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
        except FileNotFoundError:
            return ""
        return run.stdout.strip()

    commit = git("rev-parse", "--verify", "--quiet", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def next_version(model_folder: Path) -> int:
    versions = [int(p.name) for p in model_folder.glob("*") if p.is_dir() and p.name.isascii() and p.name.isdigit()]
    return max(versions, default=0) + 1


Graphs = dict[str, GraphExample]


def provenance(states: dict[str, dict], options: ExportOptions) -> Provenance:
    """Where the package came from: data, seed, epochs and time per training stage, hardware, commit."""
    first = next(iter(states.values()))
    return Provenance(
        dataset=first.get("data", "unknown"),
        seed=first["options"]["seed"],
        epochs={stage: state["epoch"] for stage, state in states.items()},
        seconds={stage: state.get("seconds", 0.0) for stage, state in states.items()},
        hardware=options.hardware,
        commit=git_commit(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def validation_images(options: ExportOptions, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to 256 validation images (converted to the model's shape) and their labels: the inputs of the parity
    check and of samples.png."""
    val = load_splits(options, options.seed, shape).val
    return val.images[:256], val.labels[:256]


def write_package(
    options: ExportOptions, graphs: Graphs, extra_files: dict[str, bytes], evaluation: dict, **manifest: object
) -> Path:
    """Exports and checks every graph, writes the other files and the manifest (with `evaluation`, the report
    read_evaluation gives), then renames the assembled folder into place as the next version (or --version), which
    must not exist yet."""
    if options.dynamo and options.opset < 18:
        raise ValueError("the dynamo exporter writes opset-18 operators (Split with num_outputs): pass --opset 18")
    if not is_model_id(options.id):  # before the id becomes a folder
        raise ValueError(f"--id {options.id!r} is not a model id: a model id is {MODEL_ID_RULE}")
    model_folder = Path(options.out) / options.id
    version = options.version or next_version(model_folder)
    final = model_folder / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; versions are immutable, pick another --version")
    staging = model_folder / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        assemble(staging, options, graphs, extra_files, evaluation, version, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a failed export leaves nothing behind
        raise
    staging.rename(final)
    return final


def assemble(
    staging: Path,
    options: ExportOptions,
    graphs: Graphs,
    extra_files: dict,
    evaluation: dict,
    version: int,
    manifest: dict,
) -> None:
    specs = {name: export_graph(graph, staging / f"{name}.onnx", options) for name, graph in graphs.items()}
    share_tensors(staging, [spec.file for spec in specs.values()])
    parity = {}  # checked on the graphs as written, shared tensors and all; a size-free graph at every size given
    for name, graph in graphs.items():
        for inputs in (graph.inputs, *graph.other_sizes):
            differences = max_differences(graph.module, staging / specs[name].file, inputs, graph.outputs)
            at = "" if inputs is graph.inputs else "@{}x{}".format(*next(iter(inputs.values())).shape[-2:])
            parity.update({f"{name}.{k}{at}": v for k, v in differences.items()})
    for name, data in extra_files.items():
        (staging / name).write_bytes(data)
    written = Manifest(
        id=options.id,
        version=version,
        description=options.description,
        graphs=specs,
        files={p.name: sha256_file(p) for p in sorted(staging.iterdir())},
        opset=options.opset,
        metrics=evaluation.get("metrics", {}),
        evaluation=evaluation.get("method", NOT_EVALUATED),
        parity=parity,
        **manifest,
    )
    (staging / MANIFEST_FILE).write_text(written.model_dump_json(indent=2))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()

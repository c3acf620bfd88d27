"""A model package opened for offline work: found by id (and version) in a models folder, every file checked
against the manifest's sha256, its graphs as onnxruntime sessions. A size-free model's large inputs run tile by tile
(contract/tiling.py), as the service runs them, so the codes are those of one whole pass."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from contract.manifest import (
    MANIFEST_FILE,
    Manifest,
    is_model_id,
    parse_version,
    read_manifest,
    sha256_file,
    verify_files,
)
from contract.tiling import graph_plan

TILE_SIZE = 512  # the service's default: the same tiles give the same codes (they equal a whole pass either way)


def package_folder(models_dir: Path, model: str, version: int | None = None) -> Path:
    """exported_models/<model>/<version>: the newest version when none is named."""
    if not is_model_id(model):
        raise ValueError(f"{model!r} is not a model id")
    root = Path(models_dir) / model
    versions = sorted(v for v in (parse_version(p.name) for p in root.glob("*") if p.is_dir()) if v is not None)
    if not versions:
        raise FileNotFoundError(f"no packages of {model} in {models_dir}")
    if version is not None and version not in versions:
        raise FileNotFoundError(f"{model} has no version {version} in {models_dir} (it has {versions})")
    return root / str(version or versions[-1])


def providers(gpus: float) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpus > 0 else ["CPUExecutionProvider"]


@dataclass
class Package:
    folder: Path
    manifest: Manifest
    manifest_sha256: str
    sessions: dict[str, ort.InferenceSession]
    codebook: np.ndarray | None

    @property
    def stride(self) -> int | None:
        return self.manifest.size_free.stride if self.manifest.size_free else None

    def run(self, graph: str, array: np.ndarray) -> list[np.ndarray]:
        session, name = self.sessions[graph], self.manifest.graphs[graph].inputs[0].name

        def step(window: np.ndarray) -> list[np.ndarray]:
            return session.run(None, {name: self.feed(graph, window)})

        if self.manifest.size_free is None:
            return step(array)
        return graph_plan(self.manifest.size_free, graph, array.shape[-2:], TILE_SIZE).run(array, step)

    def feed(self, graph: str, window: np.ndarray) -> np.ndarray:
        """A VQ-VAE decoder's z_q, looked up from a window of codes; anything else as it is."""
        if graph == "decoder" and self.manifest.kind == "vqvae":
            return self.codebook[window].transpose(0, 3, 1, 2)
        return window

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float pixels of one shape -> code grids (N, h, w) int64, or VAE posterior means (N, Z)."""
        outputs = self.run("encoder", images)
        names = [t.name for t in self.manifest.graphs["encoder"].outputs]
        return outputs[names.index("codes" if self.manifest.kind == "vqvae" else "mean")]

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Code grids (N, h, w) of one shape, or VAE latents (N, Z) -> images (N, C, H, W) in [0, 1]."""
        return self.run("decoder", values)[0]


def open_package(folder: Path, graphs: tuple[str, ...] = ("encoder",), gpus: float = 0) -> Package:
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one worker a core: Ray runs as many workers as asked
    sessions = {
        name: ort.InferenceSession(str(folder / manifest.graphs[name].file), options, providers=providers(gpus))
        for name in graphs
    }
    codebook = np.load(folder / "codebook.npy") if "codebook.npy" in manifest.files else None
    return Package(folder, manifest, sha256_file(folder / MANIFEST_FILE), sessions, codebook)

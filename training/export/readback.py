"""A VQ-VAE package read back as the checkpoints it was exported from: its autoencoder and its prior.

Training takes hours on a CPU and the checkpoints are not in git, while the bundled package holds the same
weights: the ONNX initializers keep their torch names (the legacy exporter folds each masked convolution's
weight * mask into a constant, found by its node's name), codebook.npy is the codebook and code_penalty.npy
fixes the code frequencies. So `--vqvae exported_models/mnist-vqvae/6` trains, evaluates and exports a new
prior for the bundled autoencoder, `--prior` (or `--init`) with the same folder evaluates (or fine-tunes) the
bundled prior. Only inference state comes back: training-only settings (beta, EMA decay, restart threshold,
dropout) take their defaults, and a run's optimizer state is gone.

A GPU machine whose Python lacks pydantic (and maybe onnx), so those are imported only when a package is read;
there, carry the checkpoints this module's command writes:
    python -m training.export.readback exported_models/mnist-vqvae/6 gpu/vqvae.pt --prior gpu/prior.pt
"""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.vq_vae import VQVAEConfig

if TYPE_CHECKING:
    from contract.manifest import Manifest

MANIFEST_FILE = "manifest.json"  # contract.manifest.MANIFEST_FILE, named here without importing pydantic
GRAPHS = {"vqvae": ("encoder", "decoder"), "prior": ("prior",)}  # the export wrappers' attribute is the kind


def is_package(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_FILE).is_file()


def checkpoint_from_package(folder: Path, kind: str) -> dict[str, Any]:
    """The checkpoint dict (kind, config, model, epoch, seconds, data, options) of a VQ-VAE package's `kind` model."""
    from contract.manifest import read_manifest

    manifest = read_manifest(folder)
    if manifest.kind != "vqvae" or kind not in GRAPHS:
        raise ValueError(f"{folder} is a {manifest.kind!r} package: only a 'vqvae' package's vqvae and prior read back")
    weights = onnx_weights(folder, kind)
    if kind == "vqvae":
        penalty = code_penalty(folder)
        config = vqvae_config(manifest, weights, 0.0 if penalty is None else solve_rate_weight(penalty))
        weights |= quantizer_state(folder, config, penalty)
    else:  # the masks are fixed buffers, not in the graph: the model makes them
        config = prior_config(manifest, weights)
        weights |= {name: mask for name, mask in PixelCNN(config).state_dict().items() if name.endswith(".mask")}
    training = manifest.training
    return {
        "kind": kind,
        "config": vars(config),
        "model": weights,
        "epoch": training.epochs.get(kind, 0),
        "seconds": training.seconds.get(kind, 0.0),
        "data": training.dataset,
        "options": {"seed": training.seed},
    }


def onnx_weights(folder: Path, kind: str) -> dict[str, torch.Tensor]:
    import onnx
    from onnx import numpy_helper

    prefix, weights = f"{kind}.", {}
    for graph in GRAPHS[kind]:
        model = onnx.load(folder / f"{graph}.onnx")
        arrays = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
        for name, array in arrays.items():
            if name.startswith(prefix):
                weights[name.removeprefix(prefix)] = torch.from_numpy(array.copy())
        for node in model.graph.node:  # folded masked weights: node "/layers.0/vertical/Conv" -> layers.0.vertical
            if node.op_type == "Conv" and not node.input[1].startswith(prefix) and node.input[1] in arrays:
                module = node.name.strip("/").removesuffix("/Conv").replace("/", ".")
                weights[f"{module}.weight"] = torch.from_numpy(arrays[node.input[1]].copy())
    return weights


def vqvae_config(manifest: "Manifest", weights: dict[str, torch.Tensor], rate_weight: float) -> VQVAEConfig:
    channels, height, width = manifest.image_shape
    downsamples = int(np.log2(height // manifest.latent_shape[1]))
    blocks = {name.split(".")[2] for name in weights if name.startswith("decoder.net.") and ".block." in name}
    return VQVAEConfig(
        image_channels=channels,
        image_height=height,
        image_width=width,
        hidden=weights["decoder.net.0.weight"].shape[0],
        residual_hidden=weights["decoder.net.1.block.1.weight"].shape[0],
        residual_blocks=len(blocks) // downsamples,
        downsamples=downsamples,
        num_codes=manifest.num_codes,
        code_dim=manifest.code_dim,
        rate_weight=rate_weight,
    )


def prior_config(manifest: "Manifest", weights: dict[str, torch.Tensor]) -> PixelCNNConfig:
    num_codes, channels = weights["embed.weight"].shape
    return PixelCNNConfig(
        num_codes=num_codes,
        grid_height=manifest.latent_shape[1],
        grid_width=manifest.latent_shape[2],
        channels=channels,
        layers=len({name.split(".")[1] for name in weights if name.startswith("layers.")}),
        kernel=weights["layers.0.vertical.weight"].shape[3],
        head_hidden=weights["head.1.weight"].shape[0],
        num_classes=manifest.prior.num_classes if manifest.prior else 0,
        label_dropout=0.1 if manifest.prior and manifest.prior.labels_optional else 0.0,  # any share: it has the class
    )


def code_penalty(folder: Path) -> np.ndarray | None:
    path = folder / "code_penalty.npy"
    return np.load(path).astype(np.float64) if path.is_file() else None


def quantizer_state(folder: Path, config: VQVAEConfig, penalty: np.ndarray | None) -> dict[str, torch.Tensor]:
    """The codebook, and EMA counts whose frequencies give back the package's code penalty."""
    codebook = torch.from_numpy(np.load(folder / "codebook.npy"))
    counts = torch.ones(config.num_codes)
    if penalty is not None:
        counts = torch.from_numpy(np.exp2(-penalty / config.rate_weight)).float()
    return {
        "quantizer.codebook": codebook,
        "quantizer.cluster_size": counts,
        "quantizer.code_sum": codebook * counts.unsqueeze(1),
        "quantizer.initialized": torch.tensor(True),
    }


def solve_rate_weight(penalty: np.ndarray) -> float:
    """The w with penalty = -w log2(f) for frequencies f that sum to 1 (the sum grows with w: bisect it)."""
    low, high = 1e-6, 1e3
    for _ in range(200):
        middle = (low * high) ** 0.5
        if np.exp2(-penalty / middle).sum() < 1:
            low = middle
        else:
            high = middle
    return float(middle)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a VQ-VAE package's models as training checkpoints.")
    parser.add_argument("package", type=Path, help="an exported vqvae package, e.g. exported_models/mnist-vqvae/6")
    parser.add_argument("vqvae", type=Path, help="where to write the autoencoder's checkpoint, e.g. gpu/vqvae.pt")
    parser.add_argument("--prior", type=Path, help="where to write the prior's checkpoint too")
    args = parser.parse_args()
    for kind, path in (("vqvae", args.vqvae), ("prior", args.prior)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(checkpoint_from_package(args.package, kind), path)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Loading checkpoints: each stores its kind and config beside the weights."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.models.classifier import Classifier, ClassifierConfig
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.vae import VAE, VAEConfig
from training.models.vq_vae import VQVAE, VQVAEConfig

MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "vqvae": (VQVAE, VQVAEConfig),
    "prior": (PixelCNN, PixelCNNConfig),
    "classifier": (Classifier, ClassifierConfig),
    "vae": (VAE, VAEConfig),
}


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=device, weights_only=False)


def load_model(path: str | Path, kind: str, device: torch.device | str = "cpu") -> Any:
    """The model of `kind` saved at `path`, in eval mode on `device`."""
    state = load_checkpoint(path, device)
    if state.get("kind") != kind:
        raise ValueError(f"{path} holds a {state.get('kind')!r} checkpoint, expected {kind!r}")
    model_class, config_class = MODELS[kind]
    model = model_class(config_class(**state["config"])).to(device)
    model.load_state_dict(state["model"])
    return model.eval()

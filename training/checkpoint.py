"""Loading checkpoints: each stores its kind and config beside the weights."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.export.readback import checkpoint_from_package, is_package
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


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", kind: str = "") -> dict[str, Any]:
    """A checkpoint file, or the checkpoint of the `kind` model in a VQ-VAE package folder."""
    path = Path(path)
    if is_package(path):
        if not kind:
            raise ValueError(f"{path} is a model package: it reads back as a checkpoint only for a given kind")
        state = checkpoint_from_package(path, kind)
        state["model"] = {name: tensor.to(device) for name, tensor in state["model"].items()}
        return state
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=device, weights_only=False)


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints from before images and code grids could be non-square name one side for both."""
    config = dict(config)
    if "image_size" in config:
        config["image_height"] = config["image_width"] = config.pop("image_size")
    if "grid_size" in config:
        config["grid_height"] = config["grid_width"] = config.pop("grid_size")
    return config


def load_model(path: str | Path, kind: str, device: torch.device | str = "cpu") -> Any:
    """The model of `kind` saved at `path`, in eval mode on `device`."""
    state = load_checkpoint(path, device, kind)
    if state.get("kind") != kind:
        raise ValueError(f"{path} holds a {state.get('kind')!r} checkpoint, expected {kind!r}")
    model_class, config_class = MODELS[kind]
    model = model_class(config_class(**upgrade_config(state["config"]))).to(device)
    model.load_state_dict(state["model"])
    return model.eval()


def kind_of(model: nn.Module) -> str:
    return next(kind for kind, (model_class, _) in MODELS.items() if isinstance(model, model_class))

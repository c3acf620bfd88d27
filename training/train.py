"""Stage 1: train the VQ-VAE autoencoder (`python -m training vqvae ...`)."""

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from service.images import png_bytes, tile
from training.checkpoint import kind_of, load_checkpoint
from training.data import ImageSet, Splits, load_dataset
from training.evaluate import reconstruction_metrics
from training.models.vq_vae import VQVAE, VQVAEConfig
from training.run import Run, RunOptions, cosine_lr

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]  # (model, batch, labels, step)


def make_optimizer(model: torch.nn.Module, options: RunOptions) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)


def train_epoch(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, run: Run, images: ImageSet, epoch: int, loss_fn: LossFn
) -> float:
    """One pass over `images`; `loss_fn(model, images, labels, step)` returns the scalar loss."""
    options = run.options
    steps_per_epoch = -(-len(images) // options.batch_size)
    total_steps = steps_per_epoch * options.epochs
    model.train()
    losses = []
    batches = images.batches(options.batch_size, shuffle=True, generator=run.epoch_generator(epoch))
    bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{options.epochs}", leave=False, mininterval=5)
    for step, (batch, labels) in enumerate(bar, start=epoch * steps_per_epoch):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, total_steps, options.lr, options.warmup_steps)
        with run.autocast():
            loss = loss_fn(model, batch.to(run.device), labels.to(run.device), step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}", refresh=False)
    return float(np.mean(losses))


def save_reconstructions(model: VQVAE, images: torch.Tensor, path: Path, device: torch.device) -> None:
    """Originals on odd rows, reconstructions below them."""
    with torch.no_grad():
        model.eval()
        reconstruction = model.decode_codes(model.encode(images.to(device))[1]).cpu()
    pairs = torch.stack([images, reconstruction], 1)  # (N, 2, C, H, W)
    columns = 16
    rows = [
        pairs[i : i + columns].transpose(0, 1).reshape(-1, *images.shape[1:]) for i in range(0, len(images), columns)
    ]
    path.write_bytes(png_bytes(tile(torch.cat(rows).numpy(), columns)))


def vqvae_loss(model: VQVAE, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
    return model(images)[2]


def init_weights(model: torch.nn.Module, checkpoint: str, device: torch.device) -> None:
    """Fine-tuning: every weight of `checkpoint` goes into `model`. Weights the model adds on top (a new bias,
    say) keep their initial values; weights the model lacks are an error, as is any shape that differs."""
    missing, unexpected = model.load_state_dict(
        load_checkpoint(checkpoint, device, kind_of(model))["model"], strict=False
    )
    if unexpected:
        raise ValueError(f"{checkpoint} holds weights this model does not have: {', '.join(unexpected)}")
    if missing:
        print(f"starting from {checkpoint}; new weights keep their initial values: {', '.join(missing)}")


def fit(
    run: Run,
    model: torch.nn.Module,
    train_set: ImageSet,
    loss_fn: LossFn,
    validate: Callable[[], dict[str, float]],
    select: str,
    kind: str,
    **extra: Any,
) -> Path:
    """The loop every stage shares: train an epoch, validate, keep last.pt (to resume) and best.pt
    (lowest validation `select`), log a line. The checkpoint carries the kind, config and `extra`."""
    optimizer = make_optimizer(model, run.options)
    start_epoch, best = 0, float("inf")
    if run.options.init and not run.options.resume:
        init_weights(model, run.options.init, run.device)
    if state := run.resume_state():
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best = state["epoch"], state["best"]
    for epoch in range(start_epoch, run.options.epochs):
        train_loss = train_epoch(model, optimizer, run, train_set, epoch, loss_fn)
        val = validate()
        best = min(best, val[select])
        state = {
            "kind": kind,
            "config": asdict(model.config),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch + 1,
            "seconds": run.seconds(),
            "best": best,
            "val": val,
            **extra,
        }
        run.save("last.pt", state)
        if val[select] == best:
            run.save("best.pt", state)
        run.log(
            {"epoch": epoch + 1, "seconds": round(run.seconds(), 1), "train_loss": train_loss}
            | {f"val_{k}": v for k, v in val.items()}
        )
    return run.out / "best.pt"


def train_vqvae(options: RunOptions, config: VQVAEConfig) -> Path:
    """Stage 1; best.pt has the lowest validation MSE."""
    run = Run(options)
    splits: Splits = load_dataset(options.data, config.image_size, config.image_channels, seed=options.seed)
    channels, size, _ = splits.image_shape
    model = VQVAE(replace(config, image_channels=channels, image_size=size)).to(run.device)
    best = fit(
        run,
        model,
        splits.train,
        vqvae_loss,
        lambda: reconstruction_metrics(model, splits.val, run.device),
        "mse",
        "vqvae",
        data=splits.name,
    )
    save_reconstructions(model, splits.val.images[:64], run.out / "reconstructions.png", run.device)
    return best

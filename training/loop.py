"""The loop every training stage shares: epochs of optimizer steps on a cosine schedule, validation, and the
last and best checkpoints (`fit`); each stage (vqvae.py, prior.py, vae.py, classifier.py) brings its model,
its loss and its validation metric."""

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from training import distributed
from training.checkpoint import kind_of, load_checkpoint
from training.data import ImageSet
from training.run import Run, RunOptions, cosine_lr

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]  # (model, batch, labels, step)


def make_optimizer(model: torch.nn.Module, options: RunOptions) -> torch.optim.Optimizer:
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]  # --only-new holds the rest
    return torch.optim.AdamW(trained, lr=options.lr, weight_decay=options.weight_decay)


def train_epoch(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, run: Run, images: ImageSet, epoch: int, loss_fn: LossFn
) -> float:
    """One pass over `images` in global batches, each rank taking its share of every batch (distributed.py);
    `loss_fn(model, images, labels, step)` returns the scalar loss. Returns the mean loss over every rank."""
    options, world = run.options, run.world
    steps_per_epoch = -(-len(images) // options.batch_size)
    total_steps = steps_per_epoch * options.epochs
    model.train()
    losses = []
    batches = images.batches(options.batch_size, shuffle=True, generator=run.epoch_generator(epoch))
    description = f"epoch {epoch + 1}/{options.epochs}"
    bar = tqdm(batches, total=steps_per_epoch, desc=description, leave=False, mininterval=5, disable=not world.main)
    for step, (batch, labels) in enumerate(bar, start=epoch * steps_per_epoch):
        # Equal shares, so that averaging the ranks' gradients is the global batch's gradient: an epoch's last
        # batch drops the few rows that do not divide among the processes.
        mine = distributed.share(len(batch) - len(batch) % world.size)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, total_steps, options.lr, options.warmup_steps)
        with run.autocast():
            loss = loss_fn(model, batch[mine].to(run.device), labels[mine].to(run.device), step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}", refresh=False)
    mean = torch.tensor(float(np.mean(losses)), device=run.device)
    return distributed.all_reduce(mean).item() / world.size


ADDED_BIASES = ("class_bias.weight", "moved_bias")  # additive, so zero leaves the model unchanged


def init_weights(model: torch.nn.Module, checkpoint: str, device: torch.device) -> set[str]:
    """Fine-tuning: every weight of `checkpoint` goes into `model`; returns their names. Biases the model adds on
    top (a class bias, the moved-rows bias) start at zero, so that the model starts out computing what the
    checkpoint did; other new weights keep their initial values. Weights the model lacks are an error, as is any
    shape that differs."""
    weights = load_checkpoint(checkpoint, device, kind_of(model))["model"]
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise ValueError(f"{checkpoint} holds weights this model does not have: {', '.join(unexpected)}")
    if missing:
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name in missing:
                if name.endswith(ADDED_BIASES):
                    parameters[name].zero_()
        print(f"starting from {checkpoint}; new weights (added biases at zero): {', '.join(missing)}")
    return set(weights)


def hold_weights(model: torch.nn.Module, held: set[str], checkpoint: str) -> None:
    """--only-new: the weights named in `held` (those `checkpoint` gave) stay as they are; only the others train."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in held)
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(f"--only-new: the model adds no weights to {checkpoint}, so there is nothing to train")


def fit(
    run: Run,
    model: torch.nn.Module,
    train_set: ImageSet,
    loss_fn: LossFn,
    validate: Callable[[], dict[str, float]],
    *,
    select: str,
    kind: str,
    **extra: Any,
) -> Path:
    """The loop every stage shares: train an epoch, validate, keep last.pt (to resume) and best.pt
    (lowest validation `select`), log a line. The checkpoint carries the kind, config and `extra`."""
    if run.options.only_new and not run.options.init:
        raise ValueError("--only-new needs --init: it trains only the weights that checkpoint lacks")
    if run.options.init and not run.options.resume:
        given = init_weights(model, run.options.init, run.device)
    elif run.options.only_new:  # resumed: the weights held are still the ones --init gave
        given = set(load_checkpoint(run.options.init, run.device, kind_of(model))["model"])
    if run.options.only_new:
        hold_weights(model, given, run.options.init)
    optimizer = make_optimizer(model, run.options)
    trained = distributed.parallel(model, run.device)  # DistributedDataParallel under torchrun
    start_epoch, best = 0, float("inf")
    if state := run.resume_state():
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best = state["epoch"], state["best"]
    for epoch in range(start_epoch, run.options.epochs):
        train_loss = train_epoch(trained, optimizer, run, train_set, epoch, loss_fn)
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
    distributed.barrier()  # rank 0 has written its checkpoints before anyone reads them
    return run.out / "best.pt"

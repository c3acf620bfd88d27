"""Vector quantizer with EMA codebook updates and dead-code restarts.

van den Oord et al. 2017, "Neural Discrete Representation Learning" (VQ-VAE), appendix A.1
for the exponential-moving-average codebook; dead codes are re-seeded from recent encoder
outputs, as in Dhariwal et al. 2020 (Jukebox) and Zeghidour et al. 2021 (SoundStream).
With a rate weight, codes are chosen as in entropy-constrained VQ (Chou, Lookabaugh & Gray 1989):
each code also costs rate_weight * -log2 of its frequency, so rarely needed near-duplicates lose to
common codes and the codes carry fewer bits for the prior to model.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.distributed import all_gather, all_reduce


@dataclass
class QuantizerStats:
    usage: float  # fraction of the codebook used in the batch
    perplexity: float  # exp(entropy of code frequencies)


def code_statistics(codes: torch.Tensor, num_codes: int) -> QuantizerStats:
    counts = torch.bincount(codes.flatten(), minlength=num_codes).float()
    probs = counts / counts.sum()
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return QuantizerStats(usage=(counts > 0).float().mean().item(), perplexity=entropy.exp().item())


class QuantizerOutput(NamedTuple):
    z_q: torch.Tensor  # (B, D, h, w), with straight-through gradients to z_e
    codes: torch.Tensor  # (B, h, w)
    commit_loss: torch.Tensor


class VectorQuantizer(nn.Module):
    """Maps each D-vector of z_e (B, D, h, w) to its nearest of K codebook vectors.

    Returns (z_q, codes, commit_loss); z_q carries straight-through gradients to z_e.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        decay: float = 0.99,
        restart_threshold: float = 1.0,
        rate_weight: float = 0.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if rate_weight < 0:
            raise ValueError(f"rate_weight must be >= 0 (a negative weight would favour rare codes), got {rate_weight}")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.beta, self.decay, self.eps = beta, decay, eps
        self.restart_threshold = restart_threshold
        self.rate_weight = rate_weight
        self.register_buffer("codebook", torch.randn(num_codes, code_dim) * 0.1)
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("code_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))

    def code_penalty(self) -> torch.Tensor:
        """(K,) rate_weight * -log2(frequency of each code), added to its squared distance."""
        frequencies = self.cluster_size / self.cluster_size.sum()
        return -self.rate_weight * torch.log2(frequencies.clamp_min(1e-12))

    def distances(self, vectors: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., K): squared distance to every code, less |x|^2, which is the same for every code."""
        return (self.codebook**2).sum(1) - 2 * vectors @ self.codebook.t()

    def nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        costs = self.distances(flat)  # (N, K)
        if self.rate_weight:
            costs = costs + self.code_penalty()
        return costs.argmin(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> z_q (B, D, h, w)."""
        return self.codebook[codes].permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        # Distances and EMA statistics need full precision even under mixed-precision training.
        with torch.autocast(z_e.device.type, enabled=False):
            return self._quantize(z_e.float())

    def _quantize(self, z_e: torch.Tensor) -> QuantizerOutput:
        B, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)  # (B*h*w, D)
        if self.training and not self.initialized:
            self._initialize(flat.detach())
        codes = self.nearest_codes(flat.detach())
        if self.training:
            self._ema_update(flat.detach(), codes)
        z_q = self.codebook[codes].view(B, h, w, D).permute(0, 3, 1, 2)
        # The codebook learns by EMA, so only the encoder is pulled toward its codes.
        commit_loss = self.beta * F.mse_loss(z_e, z_q.detach())
        z_q = z_e + (z_q - z_e).detach()  # straight-through estimator
        return QuantizerOutput(z_q, codes.view(B, h, w), commit_loss)

    def _initialize(self, flat: torch.Tensor) -> None:
        # Seeding from data avoids codes that start far from every encoder output and never win. Under torchrun
        # every rank draws the same picks from every rank's outputs: one codebook.
        flat = all_gather(flat)
        picks = flat[torch.randint(len(flat), (self.num_codes,), device=flat.device)]
        self.codebook.copy_(picks)
        self.code_sum.copy_(picks)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        one_hot = F.one_hot(codes, self.num_codes).type(flat.dtype)  # (N, K)
        counts, sums = all_reduce(one_hot.sum(0)), all_reduce(one_hot.t() @ flat)  # every rank's batch
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.code_sum / smoothed.unsqueeze(1))
        self._restart_dead_codes(flat)

    def _restart_dead_codes(self, flat: torch.Tensor) -> None:
        dead = self.cluster_size < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        flat = all_gather(flat)  # the counts are global, so every rank restarts the same codes with the same picks
        picks = flat[torch.randint(len(flat), (n_dead,), device=flat.device)]
        # A restarted code starts as if it were of average use: with a rate weight, a count of ~0
        # would price it out before it could win any input.
        count = self.cluster_size.mean() if self.rate_weight else 1.0
        self.codebook[dead] = picks
        self.code_sum[dead] = picks * count
        self.cluster_size[dead] = count

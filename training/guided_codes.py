"""Prior-guided codes: each image's code grid chosen for distortion plus rate under a prior.

The encoder picks each code by squared distance (plus rate_weight x -log2 of the code's frequency: entropy-
constrained VQ). Here the rate is a prior's: in raster order, the code that minimises
|z_e - c|^2 + weight x -log2 p_guide(c | the codes before it), the greedy rate-distortion-optimised quantisation
of video coders. Grids chosen so carry less of what the decoder barely needs and more of what the prior can
predict, and a prior trained on them draws samples that read more clearly as digits (README, Bundled models).
The guide runs as Fast PixelCNN steps (pixelcnn_steps.py), so a grid costs about one forward pass.
"""

import numpy as np
import torch
from tqdm import tqdm

from contract.sampling import CachedPrior, fill_codes_cached
from training import distributed
from training.data import ImageSet
from training.models.pixelcnn import PixelCNN
from training.models.pixelcnn_steps import torch_steps
from training.models.vq_vae import VQVAE


def code_bits(logits: np.ndarray) -> np.ndarray:
    """Logits (N, K) -> -log2 of each code's probability."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return (np.log(np.exp(shifted).sum(axis=1, keepdims=True)) - shifted) / np.log(2)


@torch.no_grad()
def guided_codes(
    vqvae: VQVAE, guide: PixelCNN, images: ImageSet, weight: float, device: torch.device, batch_size: int = 1000
) -> torch.Tensor:
    """All images of a split -> their code grids (N, h, w), on the CPU, chosen under the guide's rate; under
    torchrun each rank chooses its share and the shares are gathered back in order."""
    if weight < 0:
        raise ValueError(f"the guide's weight must be >= 0 (bits -> squared distance), got {weight}")
    vqvae.eval()
    steps = torch_steps(guide.eval(), device)

    def choose(rows: slice) -> torch.Tensor:
        part, grids = ImageSet(images.images[rows], images.labels[rows]), []
        total, main = -(-len(part) // batch_size), distributed.world().main
        for batch, labels in tqdm(part.batches(batch_size), total=total, desc="guided codes", disable=not main):
            z_e = vqvae.encoder(batch.to(device)).permute(0, 2, 3, 1).float()  # (B, h, w, D)
            distances = vqvae.quantizer.distances(z_e).cpu().numpy()  # (B, h, w, K)
            grids.append(guided_grids(steps, distances, weight, labels.numpy() if guide.config.num_classes else None))
        return torch.from_numpy(np.concatenate(grids))

    return distributed.gather_rows(choose, len(images))


def guided_grids(steps: CachedPrior, distances: np.ndarray, weight: float, labels: np.ndarray | None) -> np.ndarray:
    """Distances (B, h, w, K) -> grids (B, h, w): at each position the code of least distance + weight x rate."""

    def pick(logits: np.ndarray, rows: np.ndarray, i: int, j: int) -> np.ndarray:
        return (distances[rows, i, j] + weight * code_bits(logits)).argmin(axis=1)

    start = np.zeros(distances.shape[:3], np.int64)
    return fill_codes_cached(steps, start, np.ones(start.shape, bool), pick, labels)

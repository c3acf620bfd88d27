"""Fast PixelCNN sampling: the gated PixelCNN split into a row step and a position step.

Ramachandran et al. 2017, "Fast Generation for Convolutional Image Models": caching each layer's
activations lets every sampling step compute only what the newly drawn code changes, so drawing a
whole grid costs about one full forward pass instead of h*w of them.

For the gated PixelCNN (pixelcnn.py) the vertical stack at row i depends only on rows above, so
it is computed once per row; the horizontal stack and the output head run once per position.
The caller keeps the caches and passes in windows of them; neither module indexes by position,
so both export to ONNX with fixed shapes besides the batch axis. Codes equal to K (one past the
vocabulary) stand for "outside the grid" and embed to zeros, which is what zero padding gives.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract.sampling import CachedPrior
from training.models.pixelcnn import PixelCNN, gate

# Tensors laid out (layers, batch, ...); every other input and output is batch-first.
LAYER_MAJOR = ("v_above", "v_row", "out_v_row", "h_left", "v_here", "h_here")


def padded_embedding(prior: PixelCNN, codes: torch.Tensor) -> torch.Tensor:
    """Codes (..., ) in [0, K] -> embeddings (..., C); code K embeds to zeros."""
    table = torch.cat([prior.embed.weight, torch.zeros_like(prior.embed.weight[:1])])
    return F.embedding(codes, table)


def class_biases(prior: PixelCNN, labels: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """Per layer, the (vertical, horizontal) class bias (B, 2C) each, or None when unconditional."""
    return [None if layer.class_bias is None else layer.class_bias(labels).chunk(2, dim=1) for layer in prior.layers]


class PixelCNNRowStep(nn.Module):
    """Row i of every layer's vertical stack, from the rows above it.

    codes_above (B, half, W) int64: codes of rows i-half .. i-1 (K outside the grid)
    v_above (L-1, B, C, half, W): vertical inputs of layers 1..L-1 at those rows (zeros outside)
    -> v_row (L, B, 2C, W): each layer's vertical convolution at row i, before gating
    -> out_v_row (L-1, B, C, W): the gated outputs of layers 0..L-2, the next layers' inputs at row i
    """

    def __init__(self, prior: PixelCNN):
        super().__init__()
        self.prior = prior

    def forward(
        self, codes_above: torch.Tensor, v_above: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.prior.config.kernel // 2
        biases = class_biases(self.prior, labels)
        x_above = padded_embedding(self.prior, codes_above).permute(0, 3, 1, 2)  # (B, C, half, W)
        x_row = torch.zeros_like(x_above[:, :, :1])  # the first layer's mask hides row i itself
        v_rows, out_rows = [], []
        for index, layer in enumerate(self.prior.layers):
            window = F.pad(torch.cat([x_above, x_row], dim=2), (half, half))  # (B, C, half+1, W+2*half)
            v = F.conv2d(window, layer.vertical.weight * layer.vertical.mask, layer.vertical.bias)[:, :, 0]
            v_rows.append(v)  # (B, 2C, W)
            if biases[index] is not None:
                v = v + biases[index][0][:, :, None]
            x_row = gate(v)[:, :, None]  # (B, C, 1, W): the next layer's vertical input at row i
            if index + 1 < len(self.prior.layers):
                out_rows.append(x_row[:, :, 0])
                x_above = v_above[index]
        return torch.stack(v_rows), torch.stack(out_rows)


def example_inputs(prior: PixelCNN, batch: int = 4) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Random inputs for the row step and the position step (for export and its parity check)."""
    c = prior.config
    half, generator = c.kernel // 2, torch.Generator().manual_seed(0)
    labels = {"labels": torch.arange(batch) % c.num_classes} if c.num_classes else {}
    row = {
        "codes_above": torch.randint(0, c.num_codes + 1, (batch, half, c.grid_width), generator=generator),
        "v_above": torch.randn(c.layers - 1, batch, c.channels, half, c.grid_width, generator=generator),
    }
    position = {
        "codes_left": torch.randint(0, c.num_codes + 1, (batch, half), generator=generator),
        "h_left": torch.randn(c.layers - 1, batch, c.channels, half, generator=generator),
        "v_here": torch.randn(c.layers, batch, 2 * c.channels, generator=generator),
    }
    return row | labels, position | labels


def linear(x: torch.Tensor, conv: nn.Conv2d, mask: torch.Tensor | None = None) -> torch.Tensor:
    """A convolution applied to one flattened window (B, in * kh * kw) -> (B, out), as a matrix product."""
    weight = conv.weight if mask is None else conv.weight * mask
    return F.linear(x, weight.flatten(1), conv.bias)


class PixelCNNPositionStep(nn.Module):
    """Every layer's horizontal stack and the head at position (i, j), from the positions left of it.

    codes_left (B, half) int64: codes at (i, j-half .. j-1) (K outside the grid)
    h_left (L-1, B, C, half): horizontal inputs of layers 1..L-1 at those positions (zeros outside)
    v_here (L, B, 2C): the row step's v_row at column j
    -> logits (B, K) of the code at (i, j)
    -> h_here (L-1, B, C): the horizontal outputs of layers 0..L-2 at (i, j), for the cache

    At one position every convolution sees a single window, so each is written as a matrix product:
    onnxruntime runs those about twice as fast as convolutions of a 1x1 output.
    """

    def __init__(self, prior: PixelCNN):
        super().__init__()
        self.prior = prior

    def forward(
        self, codes_left: torch.Tensor, h_left: torch.Tensor, v_here: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        biases = class_biases(self.prior, labels)
        x_left = padded_embedding(self.prior, codes_left).permute(0, 2, 1)  # (B, C, half)
        x_here = torch.zeros_like(x_left[..., 0])  # (B, C): the first layer's mask hides position j itself
        outputs = []
        for index, layer in enumerate(self.prior.layers):
            window = torch.cat([x_left, x_here[..., None]], dim=2).flatten(1)  # (B, C * (half+1))
            h = linear(window, layer.horizontal, layer.horizontal.mask) + linear(
                v_here[index], layer.vertical_to_horizontal
            )
            if biases[index] is not None:
                h = h + biases[index][1]
            out = linear(gate(h), layer.horizontal_out)
            x_here = out + x_here if layer.residual else out  # (B, C)
            if index + 1 < len(self.prior.layers):
                outputs.append(x_here)
                x_left = h_left[index]
        _, hidden, _, output = self.prior.head  # ReLU, 1x1 conv, ReLU, 1x1 conv
        logits = linear(F.relu(linear(F.relu(x_here), hidden)), output)
        return logits, torch.stack(outputs)


def numpy_step(step: nn.Module, device: torch.device | str = "cpu"):
    """The step as the service calls a graph: numpy arrays in (None for no labels), numpy arrays out."""

    def call(*arrays: np.ndarray | None) -> list[np.ndarray]:
        inputs = [None if a is None else torch.from_numpy(a).to(device) for a in arrays]
        with torch.inference_mode():
            return [out.cpu().numpy() for out in step(*inputs)]

    return call


def torch_steps(prior: PixelCNN, device: torch.device | str = "cpu") -> CachedPrior:
    """The prior's steps in torch, for the service's cached sampling loop (tests, bench.sampling_torch)."""
    c = prior.config
    return CachedPrior(
        row=numpy_step(PixelCNNRowStep(prior), device),
        position=numpy_step(PixelCNNPositionStep(prior), device),
        num_codes=c.num_codes,
        layers=c.layers,
        channels=c.channels,
        half=c.kernel // 2,
    )

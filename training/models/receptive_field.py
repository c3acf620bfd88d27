"""Receptive fields of convolutional stacks, derived from their layers (Araujo et al. 2019, "Computing Receptive
Fields of Convolutional Neural Networks"): which inputs an output depends on, as intervals along one axis.

An encoder's code i depends on the pixels [S*i + lo, S*i + hi] (S, the stride, the product of the layers'); a
decoder's code j reaches the pixels [S*j + lo, S*j + hi]. Residual blocks add their input back, which widens
nothing beyond their convolutions; activations are pointwise. Only square kernels and equal strides on both axes
are taken, so one axis says it all.
"""

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Reach:
    stride: int  # S
    lo: int
    hi: int


def spatial_layers(module: nn.Module) -> list[nn.Module]:
    """The convolutions of a module, in the order the input meets them."""
    found = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    for layer in found:
        kernel, stride, padding = layer.kernel_size, layer.stride, layer.padding
        if len({*kernel}) != 1 or len({*stride}) != 1 or len({*padding}) != 1 or layer.dilation != (1, 1):
            raise ValueError(f"{layer}: receptive fields are derived for square, undilated layers only")
    return found


def encoder_reach(module: nn.Module) -> Reach:
    """The pixels one output position depends on, walking back from the output through strided convolutions."""
    stride, lo, hi = 1, 0, 0
    for layer in reversed(spatial_layers(module)):
        if isinstance(layer, nn.ConvTranspose2d):
            raise ValueError("an encoder's receptive field is derived for convolutions, not transposed ones")
        k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
        stride, lo, hi = stride * s, lo * s - p, hi * s - p + k - 1
    return Reach(stride, lo, hi)


def decoder_reach(module: nn.Module) -> Reach:
    """The outputs one input position reaches, walking forward through stride-1 and transposed convolutions."""
    stride, lo, hi = 1, 0, 0
    for layer in spatial_layers(module):
        k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
        if isinstance(layer, nn.ConvTranspose2d):
            stride, lo, hi = stride * s, lo * s - p, hi * s - p + k - 1
        elif s == 1:
            lo, hi = lo + p - k + 1, hi + p
        else:
            raise ValueError("a decoder's receptive field is derived for stride-1 and transposed convolutions")
    return Reach(stride, lo, hi)


def encoder_receptive_field(reach: Reach) -> int:
    """The side of the square of pixels one code depends on, its own cell in the middle (checked to be)."""
    left, right = -reach.lo, reach.hi - (reach.stride - 1)
    if left != right:
        raise ValueError(f"the encoder reaches {left} pixels left of a code's cell and {right} right: not centred")
    return reach.hi - reach.lo + 1


def decoder_receptive_field(reach: Reach) -> int:
    """The side of the square of codes that the pixels of one code's cell depend on, that code in the middle."""
    s = reach.stride
    # Pixel p depends on the codes j with S*j + lo <= p <= S*j + hi; over the cell of code 0, p = 0 .. S - 1.
    left = max((reach.hi - p) // s for p in range(s))  # -ceil((p - hi) / S): the farthest code to the left
    right = max((p - reach.lo) // s for p in range(s))  # floor((p - lo) / S): the farthest to the right
    if left != right:
        raise ValueError(f"a decoder's cell depends on {left} codes to its left and {right} to its right")
    return left + right + 1

"""Size-free VQ-VAEs: receptive fields derived from the layers and checked by perturbing one pixel (one code), and
packages whose encoder and decoder take any multiple of the stride, matching torch there."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract.manifest import SizeFree, read_manifest
from tests.conftest import TINY_VQVAE, TinyPipeline
from training.checkpoint import load_model
from training.models.receptive_field import (
    decoder_reach,
    decoder_receptive_field,
    encoder_reach,
    encoder_receptive_field,
)
from training.models.vq_vae import VQVAE, VQVAEConfig

CONFIGS = [
    TINY_VQVAE,
    VQVAEConfig(image_height=32, image_width=32, hidden=32, residual_hidden=8, downsamples=3, code_dim=4),
]


def sizes_halo(field: int, stride: int) -> int:
    return SizeFree(
        stride=stride, encoder_receptive_field=field, decoder_receptive_field=1, trained_size=(stride,) * 2
    ).encoder_halo


def random_model(config: VQVAEConfig) -> VQVAE:
    torch.manual_seed(0)
    model = VQVAE(config).eval().double()  # float64: a far pixel's small effect must not round away
    for parameter in model.parameters():  # no dead units: every weight moves every output it can reach
        torch.nn.init.uniform_(parameter, 0.01, 0.03)
    return model


@pytest.mark.parametrize("config", CONFIGS)
def test_one_pixel_moves_exactly_the_codes_its_receptive_field_says(config: VQVAEConfig) -> None:
    model = random_model(config)
    reach = encoder_reach(model.encoder)
    size, y, x = 16 * reach.stride, 8 * reach.stride + 1, 5 * reach.stride + 2
    image = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    moved = image.clone()
    moved[0, 0, y, x] += 1.0
    with torch.no_grad():
        changed = (model.encoder(image) - model.encoder(moved)).abs().amax(1)[0] > 0  # (h, w)
    s = reach.stride
    rows = [i for i in range(size // s) if s * i + reach.lo <= y <= s * i + reach.hi]
    cols = [j for j in range(size // s) if s * j + reach.lo <= x <= s * j + reach.hi]
    assert set(zip(*np.nonzero(changed.numpy()), strict=True)) == {(i, j) for i in rows for j in cols}
    assert encoder_receptive_field(reach) == reach.hi - reach.lo + 1
    # The field reaches as far on each side of a code's own cell: the tiles' halos (SizeFree.encoder_halo) rely on it.
    assert -reach.lo == reach.hi - (s - 1) and sizes_halo(encoder_receptive_field(reach), s) >= -reach.lo


@pytest.mark.parametrize("config", CONFIGS)
def test_one_code_moves_exactly_the_pixels_its_receptive_field_says(config: VQVAEConfig) -> None:
    model = random_model(config)
    reach = decoder_reach(model.decoder)
    h = w = 16
    i, j = 6, 8
    z_q = torch.rand(1, config.code_dim, h, w, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    moved = z_q.clone()
    moved[0, :, i, j] += 1.0
    with torch.no_grad():
        changed = (model.decoder(z_q) - model.decoder(moved)).abs()[0, 0] > 0  # (H, W)
    s = reach.stride
    rows, cols = np.nonzero(changed.numpy())
    assert (rows.min(), rows.max()) == (s * i + reach.lo, s * i + reach.hi)
    assert (cols.min(), cols.max()) == (s * j + reach.lo, s * j + reach.hi)
    # The pixels of one code's cell depend on the codes within half the decoder's field of it, no farther.
    field, cell = decoder_receptive_field(reach), range(s * i, s * i + s)
    needed = [k for k in range(h) if any(s * k + reach.lo <= p <= s * k + reach.hi for p in cell)]
    assert needed == list(range(i - field // 2, i + field // 2 + 1))


def test_the_package_is_size_free_and_matches_torch_at_other_sizes(tiny_pipeline: TinyPipeline) -> None:
    manifest = read_manifest(tiny_pipeline.package)
    sizes = manifest.size_free
    assert sizes is not None and sizes.stride == 4 and sizes.trained_size == (28, 28)
    assert (sizes.encoder_receptive_field, sizes.decoder_receptive_field) == (22, 9)
    assert manifest.graphs["encoder"].inputs[0].shape == [-1, 1, -1, -1]
    assert manifest.graphs["encoder"].outputs[1].shape == [-1, -1, -1]
    assert manifest.graphs["prior"].inputs[0].shape == [-1, 7, 7]  # the prior keeps its grid
    assert {"encoder.codes@56x56", "encoder.codes@28x84", "decoder.image@14x14"} <= set(manifest.parity)
    vqvae = load_model(str(tiny_pipeline.vqvae), "vqvae")
    encoder = ort.InferenceSession(str(tiny_pipeline.package / "encoder.onnx"))
    decoder = ort.InferenceSession(str(tiny_pipeline.package / "decoder.onnx"))
    image = torch.rand(2, 1, 44, 68, generator=torch.Generator().manual_seed(3))
    z_e, codes = encoder.run(None, {"image": image.numpy()})
    with torch.no_grad():
        expected = vqvae.encode(image)
        pixels = vqvae.decode(vqvae.quantizer.lookup(expected.codes))
    assert codes.shape == (2, 11, 17) and np.array_equal(codes, expected.codes.numpy())
    np.testing.assert_allclose(z_e, expected.z_e.numpy(), atol=1e-4)
    z_q = vqvae.quantizer.lookup(expected.codes).numpy()
    np.testing.assert_allclose(decoder.run(None, {"z_q": z_q})[0], pixels.numpy(), atol=1e-4)

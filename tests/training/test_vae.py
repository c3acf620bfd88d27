import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import DATA, TinyPipeline, run_options
from training.data import ImageSet
from training.evaluate import EvaluateOptions, evaluate_vae
from training.export.package import ExportOptions
from training.export.vae import export_vae
from training.metrics.vae import (
    VAEStatistics,
    analogies,
    bits_per_dimension,
    importance_sampled_log_likelihood,
    vae_statistics,
)
from training.models.vae import VAE, DiagonalGaussian, VAEConfig, standard_normal_log_prob
from training.vae import VAEOptions, train_vae

VARIANTS = [
    VAEConfig(architecture="mlp", latent_dim=2, hidden=32),
    VAEConfig(architecture="mlp", latent_dim=5, hidden=32, hidden_layers=3, activation="relu"),  # Rezende et al.
    VAEConfig(architecture="mlp", latent_dim=10, hidden=32, likelihood="gaussian"),
    VAEConfig(architecture="conv", latent_dim=20, channels=8),
    VAEConfig(architecture="resnet", latent_dim=20, channels=8, residual_blocks=1, num_classes=10),
    VAEConfig(architecture="transformer", latent_dim=8, width=16, depth=1, heads=2, patch_size=7),
    VAEConfig(architecture="pixelcnn", latent_dim=4, channels=4, pixelcnn_layers=2, pixelcnn_channels=8),
    VAEConfig(
        architecture="conv",
        latent_dim=4,
        channels=4,
        image_channels=3,
        image_height=32,
        image_width=20,
        likelihood="gaussian",
    ),
]


@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: f"{c.architecture}-{c.likelihood}-z{c.latent_dim}")
def test_shapes_and_a_finite_loss(config: VAEConfig) -> None:
    model = VAE(config)
    images = torch.rand(3, *config.image_shape).round()
    labels = torch.tensor([0, 4, 9]) if config.num_classes else None
    posterior = model.encode(images)
    assert posterior.mean.shape == posterior.logvar.shape == (3, config.latent_dim)
    decoded = model.decode(posterior.sample(), labels)
    assert decoded.shape == images.shape and decoded.min() >= 0 and decoded.max() <= 1
    kl, loss = model(images, labels)
    assert kl.shape == (3, config.latent_dim) and torch.isfinite(loss)
    loss.backward()
    assert all(
        p.grad is not None
        for name, p in model.named_parameters()
        if name != "log_scale" or config.likelihood == "gaussian"
    )


def test_reparameterised_samples_have_the_posterior_moments() -> None:
    mean, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(0.25)]])
    posterior = DiagonalGaussian(mean.expand(200_000, 2), logvar.expand(200_000, 2))
    z = posterior.sample(torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), mean[0], atol=0.01)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01)


def test_kl_matches_its_closed_form_and_a_monte_carlo_estimate() -> None:
    posterior = DiagonalGaussian(torch.tensor([[0.5, -1.0, 0.0]]), torch.tensor([[0.2, -0.7, 0.0]]))
    mu, var = posterior.mean, posterior.logvar.exp()
    closed = 0.5 * (mu**2 + var - 1 - var.log())
    assert torch.allclose(posterior.kl(), closed)
    z = posterior.mean + var.sqrt() * torch.randn(400_000, 3, generator=torch.Generator().manual_seed(0))
    monte_carlo = (posterior.log_prob(z) - standard_normal_log_prob(z)).mean()
    assert monte_carlo.item() == pytest.approx(posterior.kl().sum().item(), abs=0.01)
    assert float(DiagonalGaussian(torch.zeros(1, 4), torch.zeros(1, 4)).kl().sum()) == 0.0


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): log p(x) is exact, N(b, W W^T + s^2 I)."""

    def __init__(self, latent: int = 2, observed: int = 3, noise: float = 0.5, posterior_scale: float = 1.0):
        generator = torch.Generator().manual_seed(0)
        self.W = torch.randn(observed, latent, generator=generator, dtype=torch.float64)
        self.b = torch.randn(observed, generator=generator, dtype=torch.float64)
        self.noise, self.posterior_scale = noise, posterior_scale

    def exact_posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        precision = torch.eye(self.W.shape[1], dtype=torch.float64) + self.W.T @ self.W / self.noise**2
        covariance = torch.linalg.inv(precision)
        return (x - self.b) @ self.W @ covariance / self.noise**2, covariance

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """A diagonal proposal near (not at) the exact posterior."""
        mean, covariance = self.exact_posterior(x)
        variance = covariance.diagonal() * self.posterior_scale**2
        return DiagonalGaussian(mean, variance.log().expand_as(mean))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, labels: None) -> torch.Tensor:
        mean = z @ self.W.T + self.b
        return (-0.5 * (math.log(2 * math.pi) + 2 * math.log(self.noise) + ((x - mean) / self.noise) ** 2)).sum(-1)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        covariance = self.W @ self.W.T + self.noise**2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, covariance).log_prob(x)


@pytest.mark.parametrize("posterior_scale", [1.0, 1.5])
def test_importance_sampling_recovers_the_exact_log_likelihood(posterior_scale: float) -> None:
    model = LinearGaussian(posterior_scale=posterior_scale)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    exact = model.log_marginal(x)
    estimate = importance_sampled_log_likelihood(
        model, x, None, samples=5000, generator=torch.Generator().manual_seed(2)
    )
    assert torch.allclose(estimate, exact, atol=0.02)
    if posterior_scale > 1:  # a visibly poor proposal: one sample (the ELBO) falls short, k = 5000 do not
        one = torch.stack([importance_sampled_log_likelihood(model, x, None, samples=1) for _ in range(2000)]).mean(0)
        assert (one < exact - 0.05).all() and ((exact - estimate).abs() < (exact - one) / 5).all()


def test_free_bits_and_warm_up_change_the_kl_term() -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 1, 28, 28).round()
    plain = VAE(VAEConfig(latent_dim=4, hidden=16))
    with_floor = VAE(VAEConfig(latent_dim=4, hidden=16, free_bits=50.0))
    with_floor.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    kl, loss = plain(images)
    torch.manual_seed(1)
    _, floored = with_floor(images)
    assert floored.item() == pytest.approx(loss.item() - kl.sum(1).mean().item() + 4 * 50.0, rel=1e-5)
    warm = VAE(VAEConfig(latent_dim=4, hidden=16, beta=2.0, kl_warmup_steps=100))
    assert (warm.kl_weight(0), warm.kl_weight(50), warm.kl_weight(500), warm.kl_weight(None)) == (0.0, 1.0, 2.0, 2.0)


def test_bits_per_dimension_of_a_uniform_density() -> None:
    # Density 1 on [0, 1]^D is 1/256 per dimension on the 0..255 scale: exactly 8 bits per dimension.
    assert bits_per_dimension(0.0, 784) == pytest.approx(8.0)


def write_one_image_per_class(folder: Path, copies: int = 20) -> None:
    """Ten classes, each a bar at its own height, every copy identical: the label says everything."""
    for label in range(10):
        (folder / str(label)).mkdir(parents=True)
        pixels = np.zeros((28, 28), np.uint8)
        pixels[2 + 2 * label : 4 + 2 * label, 4:24] = 255
        for copy in range(copies):
            Image.fromarray(pixels).save(folder / str(label) / f"{copy}.png")


@pytest.mark.parametrize("conditional", [True, False])
def test_collapse_monitor_fires_when_the_decoder_does_not_need_z(
    tmp_path: Path, capsys: pytest.CaptureFixture, conditional: bool
) -> None:
    """A decoder given the class (and ample capacity) draws every image without z, so the KL term
    collapses; the same decoder without the class needs z to carry it."""
    write_one_image_per_class(tmp_path / "data")
    options = run_options(tmp_path / "run", epochs=20)
    options.data, options.lr, options.batch_size = str(tmp_path / "data"), 1e-2, 16
    overpowered = VAEConfig(latent_dim=4, hidden=256, hidden_layers=2, activation="relu")
    best = train_vae(options, VAEOptions(conditional=conditional), overpowered)
    log = capsys.readouterr().out
    assert "KL per latent dimension" in log
    final = torch.load(best.parent / "last.pt", weights_only=False)["val"]
    assert final["collapsed"] == float(conditional)
    if conditional:
        assert "WARNING: posterior collapse" in log and final["kl"] < 0.1
    else:
        assert final["kl"] > 1.0  # log 10 nats would name the class exactly


def statistics_with(kl_per_dimension: list[float], data_dimensions: int = 784) -> VAEStatistics:
    kl = sum(kl_per_dimension)
    return VAEStatistics(
        elbo=-90.0, reconstruction=kl - 90.0, kl=kl, kl_per_dimension=kl_per_dimension,
        activity_per_dimension=[1.0] * len(kl_per_dimension), active_units=len(kl_per_dimension),
        collapsed_dimensions=0, data_dimensions=data_dimensions,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kl_per_dimension", "warns"),
    [
        ([0.85, 0.27] + [0.03] * 14, True),  # the PixelCNN-decoder VAE without free bits: 1.5 nats in z
        ([0.5] * 16, False),  # the same with free bits of 0.5 nats: 8 nats, every dimension at the floor
        ([3.1, 3.0], False),  # mnist-vae-2d: 6 nats in two dimensions
        ([2.5] * 10 + [0.0] * 10, False),  # a VAE that uses half its dimensions (inactive units, not collapse)
    ],
)
def test_the_monitor_warns_of_near_collapse_only(kl_per_dimension: list[float], warns: bool) -> None:
    warning = statistics_with(kl_per_dimension).collapse_warning()
    assert (warning is not None) == warns
    if warns:
        assert "14 of 16 latent dimensions under 0.1 nats" in warning


def test_the_autoregressive_decoder_is_a_normalised_distribution_over_images() -> None:
    """Summed over all 2^16 binary 4x4 images, p(x|z) is 1 for each z: the masks let no pixel see itself or
    a later one. And z with a leading sample axis gives each sample's likelihood."""
    config = VAEConfig(
        architecture="pixelcnn", image_height=4, image_width=4, latent_dim=2, channels=4,
        pixelcnn_layers=3, pixelcnn_channels=8, num_classes=3,
    )  # fmt: skip
    model = VAE(config).eval()
    every_image = ((torch.arange(2**16)[:, None] >> torch.arange(16)) & 1).float().view(-1, 1, 4, 4)
    z, labels = torch.randn(2, 2), torch.tensor([1, 2])
    with torch.no_grad():
        for row in range(2):
            rows = z[row].expand(len(every_image), 2)
            log_p = model.log_likelihood(every_image, rows, labels[row].expand(len(every_image)))
            torch.testing.assert_close(log_p.logsumexp(0), torch.tensor(0.0), atol=1e-4, rtol=0)
        images = every_image[[5, 700]]
        samples = torch.stack([z, z.flip(0)])  # (S=2, B=2, Z)
        both = model.log_likelihood(images, samples, labels)
        one_by_one = [model.log_likelihood(images, s, labels) for s in samples]
    assert both.shape == (2, 2)
    torch.testing.assert_close(both, torch.stack(one_by_one))


def test_the_autoregressive_vae_does_not_export(tmp_path: Path) -> None:
    model = VAE(VAEConfig(architecture="pixelcnn", latent_dim=2, channels=4, pixelcnn_layers=2, pixelcnn_channels=4))
    checkpoint = tmp_path / "best.pt"
    torch.save({"kind": "vae", "config": asdict(model.config), "model": model.state_dict()}, checkpoint)
    with pytest.raises(ValueError, match="only the one-pass VAEs export"):
        export_vae(ExportOptions(vae=str(checkpoint), data=DATA, out=str(tmp_path / "models"), evaluation=""))


def test_statistics_count_active_units() -> None:
    model = VAE(VAEConfig(latent_dim=3, hidden=8)).eval()
    with torch.no_grad():  # dimension 0 follows the input; the others ignore it entirely
        model.mean.weight.zero_()
        model.mean.bias.zero_()
        model.mean.weight[0, 0] = 5.0
        model.logvar.weight.zero_()
        model.logvar.bias.zero_()
    images = torch.rand(64, 1, 28, 28)
    statistics = vae_statistics(model, ImageSet(images, torch.zeros(64, dtype=torch.long)), torch.device("cpu"))
    assert statistics.active_units == 1 and statistics.collapsed_dimensions == 2
    assert statistics.activity_per_dimension[0] > 0.01 and max(statistics.activity_per_dimension[1:]) < 1e-10


def test_analogies_draw_each_image_s_posterior_mean_as_every_class() -> None:
    model = VAE(VAEConfig(architecture="conv", latent_dim=3, channels=4, num_classes=10)).eval()
    images = torch.rand(2, 1, 28, 28)
    drawn, labels = analogies(model, images, torch.device("cpu"))
    assert drawn.shape == (20, 1, 28, 28) and labels.tolist() == list(range(10)) * 2
    with torch.no_grad():
        second_as_seven = model.decode(model.encode(images[1:]).mode(), torch.tensor([7]))
    torch.testing.assert_close(drawn[17:18], second_as_seven)


def test_evaluation_scores_a_conditional_vae_s_analogies(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    options = EvaluateOptions(
        data=DATA, vae=str(tiny_pipeline.root / "cvae" / "best.pt"), classifier=str(tiny_pipeline.classifier),
        importance_samples=4, analogies=5, device="cpu", out=str(tmp_path / "evaluation.json"),
    )  # fmt: skip
    report = evaluate_vae(options)
    assert 0 <= report["metrics"]["analogy_accuracy"] <= 1 and "50 images" in report["method"]
    options.on = "validation"  # for choosing between runs
    report = evaluate_vae(options)
    assert report["split"] == "validation" and "the first 5 validation images" in report["method"]
    options.on, options.classifier = "test", ""
    assert evaluate_vae(options)["analogy_score"].startswith("skipped: no classifier")
    options.on = "train"
    with pytest.raises(ValueError, match="--on takes test or validation"):
        evaluate_vae(options)


def test_evaluation_can_measure_the_first_images_of_a_split(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    """A decoder that draws pixel by pixel makes k = 5000 on every test image too slow: --images measures fewer."""
    options = EvaluateOptions(
        data=DATA, vae=str(tiny_pipeline.root / "cvae" / "best.pt"), importance_samples=4, images=7, device="cpu",
        out=str(tmp_path / "evaluation.json"),
    )  # fmt: skip
    report = evaluate_vae(options)
    whole = report["method"].split("first 7 of ")[1].split(" test images")[0]
    assert report["images"] == 7 and int(whole) > 7
    options.images = -1
    with pytest.raises(ValueError, match="--images takes a count"):
        evaluate_vae(options)

"""End to end on synthetic data: train -> prior -> evaluate -> export -> onnxruntime."""

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import training.vqvae
from contract.manifest import read_manifest, sha256_file
from tests.conftest import DATA, TINY_VQVAE, TinyPipeline, run_options
from training.__main__ import main
from training.checkpoint import load_checkpoint, load_model
from training.export.package import PARITY_TOLERANCE, ExportOptions, ParityError, max_differences
from training.export.shared_weights import SHARED_FILE
from training.export.vae import export_vae
from training.export.vqvae import DecoderGraph, export_vqvae
from training.loop import init_weights
from training.metrics.reconstruction import reconstruction_metrics
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.vqvae import train_vqvae


def session(package: Path, graph: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(package / f"{graph}.onnx"), providers=["CPUExecutionProvider"])


def test_package_matches_the_contract(tiny_pipeline: TinyPipeline) -> None:
    package = tiny_pipeline.package
    manifest = read_manifest(package)
    assert (manifest.id, manifest.version, manifest.kind) == ("tiny-vqvae", 1, "vqvae")
    assert manifest.image_shape == (1, 28, 28) and manifest.latent_shape == [4, 7, 7]
    assert manifest.num_codes == 16 and manifest.prior.conditional and manifest.prior.num_classes == 10
    assert manifest.opset >= 17
    graphs = {"encoder", "decoder", "prior", "prior_row", "prior_position"}
    assert set(manifest.files) == {f"{g}.onnx" for g in graphs} | {"codebook.npy", "samples.png", SHARED_FILE}
    for name, digest in manifest.files.items():
        assert sha256_file(package / name) == digest
    assert all(value <= PARITY_TOLERANCE for value in manifest.parity.values())
    assert manifest.parity["encoder.codes"] == 0
    evaluation = json.loads(tiny_pipeline.evaluation.read_text())
    assert manifest.metrics == evaluation["metrics"]
    assert {"mse", "psnr", "codebook_usage", "perplexity", "bits_per_code", "bits_per_pixel", "inception_score"} <= set(
        manifest.metrics
    )
    selected = {
        "vqvae": load_checkpoint(tiny_pipeline.vqvae)["epoch"],
        "prior": load_checkpoint(tiny_pipeline.prior)["epoch"],
    }
    assert manifest.training.epochs == selected and manifest.training.dataset == DATA


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_graphs_agree_with_torch_at_any_batch_size(tiny_pipeline: TinyPipeline, batch: int) -> None:
    package = tiny_pipeline.package
    vqvae = load_model(tiny_pipeline.vqvae, "vqvae")
    prior = load_model(tiny_pipeline.prior, "prior")
    images = torch.rand(batch, 1, 28, 28)
    z_e, codes = session(package, "encoder").run(None, {"image": images.numpy()})
    torch_z_e, torch_codes = vqvae.encode(images)
    np.testing.assert_allclose(z_e, torch_z_e.detach().numpy(), atol=PARITY_TOLERANCE)
    np.testing.assert_array_equal(codes, torch_codes.numpy())

    codebook = np.load(package / "codebook.npy")
    z_q = codebook[codes].transpose(0, 3, 1, 2)  # the contract: codes -> z_q is codebook[codes]
    (image,) = session(package, "decoder").run(None, {"z_q": z_q})
    assert image.shape == (batch, 1, 28, 28) and image.min() >= 0 and image.max() <= 1
    np.testing.assert_allclose(image, vqvae.decode_codes(torch_codes).detach().numpy(), atol=PARITY_TOLERANCE)

    labels = np.arange(batch) % 10
    (logits,) = session(package, "prior").run(None, {"codes": codes, "labels": labels})
    assert logits.shape == (batch, 16, 7, 7)
    expected = prior.logits(torch.from_numpy(codes), torch.from_numpy(labels)).detach().numpy()
    np.testing.assert_allclose(logits, expected, atol=PARITY_TOLERANCE)


def test_parity_check_fails_when_graph_and_model_differ(tiny_pipeline: TinyPipeline) -> None:
    vqvae = load_model(tiny_pipeline.vqvae, "vqvae")
    with torch.no_grad():
        vqvae.decoder.net[0].bias.add_(0.5)  # the model now disagrees with the exported decoder
    z_q = torch.randn(2, 4, 7, 7)
    with pytest.raises(ParityError, match="image differs"):
        max_differences(DecoderGraph(vqvae), tiny_pipeline.package / "decoder.onnx", {"z_q": z_q}, ["image"])


def test_export_adds_versions_and_never_overwrites(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    options = ExportOptions(
        vqvae=str(tiny_pipeline.vqvae),
        prior=str(tiny_pipeline.prior),
        evaluation="",
        data=DATA,
        out=str(tmp_path),
        id="m",
    )
    assert export_vqvae(options).name == "1"
    assert export_vqvae(options).name == "2"
    options.version = 2
    with pytest.raises(FileExistsError, match="immutable"):
        export_vqvae(options)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # no partial folders left


@pytest.mark.parametrize("bad_id", ["..", "../outside", "a/b", "-a", "x" * 129])
def test_export_refuses_an_id_that_is_not_a_model_id_and_writes_nothing(
    tiny_pipeline: TinyPipeline, tmp_path: Path, bad_id: str
) -> None:
    models = tmp_path / "models"
    options = ExportOptions(vae=str(tiny_pipeline.vae), evaluation="", data=DATA, out=str(models), id=bad_id)
    with pytest.raises(ValueError, match="not a model id"):
        export_vae(options)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_new_run_never_overwrites_the_checkpoints_of_an_earlier_one(tmp_path: Path) -> None:
    first = load_checkpoint(train_vqvae(run_options(tmp_path / "run", epochs=1), TINY_VQVAE).parent / "last.pt")
    with pytest.raises(FileExistsError, match="--resume continues it"):
        train_vqvae(run_options(tmp_path / "run", epochs=1), TINY_VQVAE)
    kept = load_checkpoint(tmp_path / "run" / "last.pt")
    for name, tensor in first["model"].items():
        torch.testing.assert_close(kept["model"][name], tensor, msg=name)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = load_checkpoint(train_vqvae(run_options(tmp_path / "straight"), TINY_VQVAE).parent / "last.pt")

    calls = []

    def crash_in_second_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run dies after saving epoch 1
        return reconstruction_metrics(*args, **kwargs)

    monkeypatch.setattr(training.vqvae, "reconstruction_metrics", crash_in_second_validation)
    with pytest.raises(KeyboardInterrupt):
        train_vqvae(run_options(tmp_path / "resumed"), TINY_VQVAE)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    options = run_options(tmp_path / "resumed")
    options.resume = True
    resumed = load_checkpoint(train_vqvae(options, TINY_VQVAE).parent / "last.pt")
    assert resumed["epoch"] == 2
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, msg=name)


def test_fine_tuning_starts_from_the_given_checkpoint(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    options = replace(run_options(tmp_path, epochs=1), init=str(tiny_pipeline.vqvae), lr=0.0)
    tuned = load_model(train_vqvae(options, TINY_VQVAE), "vqvae")
    start = load_model(tiny_pipeline.vqvae, "vqvae")
    # At a learning rate of 0 only the EMA codebook moves; every trained weight is the checkpoint's.
    for (name, weight), (_, original) in zip(tuned.named_parameters(), start.named_parameters(), strict=True):
        assert torch.equal(weight, original), name


def test_fine_tuning_may_add_weights_but_not_drop_them(
    tiny_pipeline: TinyPipeline, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    start = load_checkpoint(tiny_pipeline.prior)
    config = PixelCNNConfig(**start["config"])
    grown = PixelCNN(replace(config, moved_bias=True))
    init_weights(grown, str(tiny_pipeline.prior), torch.device("cpu"))
    assert "new weights (added biases at zero): layers.0.moved_bias" in capsys.readouterr().out
    for name, weight in start["model"].items():
        assert torch.equal(grown.state_dict()[name], weight), name
    # A class bias added to an unconditional prior starts at zero: the conditional model computes the same logits.
    plain = {name: weight for name, weight in start["model"].items() if ".class_bias." not in name}
    unconditional = replace(config, num_classes=0, label_dropout=0.0)
    torch.save(start | {"config": asdict(unconditional), "model": plain}, tmp_path / "plain.pt")
    original, conditional = PixelCNN(unconditional).eval(), PixelCNN(config).eval()
    original.load_state_dict(plain)
    init_weights(conditional, str(tmp_path / "plain.pt"), torch.device("cpu"))
    codes = torch.randint(0, config.num_codes, (4, *config.grid))
    with torch.no_grad():
        assert torch.equal(conditional.logits(codes, torch.arange(4)), original.logits(codes))
    with pytest.raises(ValueError, match="class_bias"):
        init_weights(PixelCNN(replace(config, num_classes=0)), str(tiny_pipeline.prior), torch.device("cpu"))


def test_command_line_trains_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(
        [
            "vqvae",
            "--data",
            "synthetic:64",
            "--out",
            str(tmp_path),
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--residual-hidden",
            "4",
            "--num-codes",
            "8",
        ]
    )
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "reconstructions.png").is_file()
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert {"epoch", "train_loss", "val_mse", "val_codebook_usage", "val_perplexity"} <= set(record)
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("name", ["tiny-vae", "tiny-cvae"])
def test_vae_packages_match_the_contract_and_torch(tiny_pipeline: TinyPipeline, name: str) -> None:
    package = tiny_pipeline.models / name / "1"
    manifest = read_manifest(package)
    conditional = name == "tiny-cvae"
    assert manifest.kind == "vae" and manifest.decoder_labels == (10 if conditional else 0)
    assert manifest.likelihood == ("gaussian" if conditional else "bernoulli")
    assert ("manifold.png" in manifest.files) == (manifest.latent_shape == [2])
    assert all(value <= PARITY_TOLERANCE for value in manifest.parity.values())
    vae = load_model(tiny_pipeline.root / ("cvae" if conditional else "vae") / "best.pt", "vae")
    images = torch.rand(3, 1, 28, 28)
    mean, logvar = session(package, "encoder").run(None, {"image": images.numpy()})
    posterior = vae.encode(images)
    np.testing.assert_allclose(mean, posterior.mean.detach().numpy(), atol=PARITY_TOLERANCE)
    np.testing.assert_allclose(logvar, posterior.logvar.detach().numpy(), atol=PARITY_TOLERANCE)
    labels = np.array([1, 5, 9])
    feeds = {"z": mean} | ({"labels": labels} if conditional else {})
    (decoded,) = session(package, "decoder").run(None, feeds)
    expected = vae.decode(torch.from_numpy(mean), torch.from_numpy(labels) if conditional else None).detach().numpy()
    assert decoded.shape == (3, 1, 28, 28) and decoded.min() >= 0 and decoded.max() <= 1
    np.testing.assert_allclose(decoded, expected, atol=PARITY_TOLERANCE)


def test_the_dynamo_exporter_writes_an_equivalent_package(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    options = ExportOptions(
        vae=str(tiny_pipeline.vae), evaluation="", data=DATA, out=str(tmp_path), id="d", dynamo=True
    )
    with pytest.raises(ValueError, match="--opset 18"):
        export_vae(options)
    options.opset = 18
    manifest = read_manifest(export_vae(options))
    assert manifest.opset == 18 and all(value <= PARITY_TOLERANCE for value in manifest.parity.values())

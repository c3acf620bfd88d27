"""The packages committed in exported_models/: the ones `make serve` and the images serve. They load (every
sha256 checked), their recorded test figures are the ones the README and the model cards quote, and they behave
like trained models."""

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from bench.sampling_torch import BUNDLED_PRIOR
from contract.images import encode_png
from service.config import Settings
from service.main import create_app
from training.checkpoint import load_model
from training.metrics.samples import predict_probabilities

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "exported_models"
VQVAE, VAE, VAE_2D, CVAE, BETA_VAE = "mnist-vqvae", "mnist-vae", "mnist-vae-2d", "mnist-cvae", "mnist-beta-vae"
FREY_VQVAE, FREY_VAE, CIFAR_VQVAE = "frey-vqvae", "frey-vae", "cifar10-vqvae"
GALLERY_DIGITS = sorted((REPO / "docs" / "gallery" / "digits").glob("*.png"))  # the first test digit of each class
CIFAR_TEST_IMAGES = sorted((REPO / "docs" / "models" / "cifar10").glob("test-*.png"))  # the first of each class


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(MODELS_DIR=BUNDLED, INTRA_OP_THREADS=1))) as test_client:
        yield test_client


NEWEST = {VQVAE: 9, VAE: 2, VAE_2D: 1, CVAE: 1, BETA_VAE: 2, FREY_VQVAE: 2, FREY_VAE: 1, CIFAR_VQVAE: 4}


def manifest(model: str, version: int | None = None) -> dict:
    return json.loads((BUNDLED / model / str(version or NEWEST[model]) / "manifest.json").read_text())


def test_every_bundled_package_loads(client: TestClient) -> None:
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    older = {f"{VAE}/1", f"{BETA_VAE}/1", f"{VQVAE}/5", f"{VQVAE}/6", f"{VQVAE}/7", f"{VQVAE}/8", f"{FREY_VQVAE}/1"}
    older |= {f"{CIFAR_VQVAE}/2", f"{CIFAR_VQVAE}/3"}
    assert set(ready.json()["models"]) == {f"{m}/{v}" for m, v in NEWEST.items()} | older
    assert client.get(f"/v1/models/{VAE}").json()["versions"] == [1, 2]


def test_the_vqvae_meets_its_reconstruction_codebook_prior_and_sample_targets() -> None:
    bundled = manifest(VQVAE, 5)  # the unconditional prior of the best likelihood
    assert bundled["num_codes"] == 512 and bundled["latent_shape"][1:] == [7, 7]
    assert bundled["metrics"]["mse"] <= 0.0012 and bundled["metrics"]["codebook_usage"] >= 0.95
    assert bundled["metrics"]["bits_per_code"] <= 3.8 and "code_penalty.npy" in bundled["files"]
    assert bundled["metrics"]["inception_score"] >= 9.0 and bundled["metrics"]["confident_fraction"] >= 0.9
    assert all(difference <= 1e-4 for difference in bundled["parity"].values())


def test_the_conditional_vqvae_draws_the_class_asked_for(client: TestClient) -> None:
    bundled = manifest(VQVAE)
    # The defaults its sweep chose on validation samples (docs/models/mnist-vqvae.md): labelled samples guided
    # enough to follow the label, samples without one (a class drawn) at the setting closest to the data.
    assert bundled["prior"] == {
        "conditional": True,
        "num_classes": 10,
        "labels_optional": True,
        "guidance": 0.75,
        "temperature": 0.8,
        "unlabelled": "any_class",
        "unlabelled_guidance": 0.25,
        "unlabelled_temperature": 0.9,
    }
    metrics = bundled["metrics"]
    assert metrics["label_accuracy"] >= 0.98 and metrics["mse"] <= 0.0012
    # One code distribution: the prior models the codes its own encoder emits (version 7's modelled guided codes).
    assert metrics["bits_per_code"] <= 3.7 < manifest(VQVAE, 7)["metrics"]["bits_per_code"]
    assert metrics["unconditional_inception_score"] >= 9.0
    # Samples without a label sit within a small multiple of the distance between two halves of the test set.
    assert metrics["unconditional_frechet_distance"] <= 5 * metrics["real_halves_frechet_distance"]
    classifier = load_model(REPO / "training" / "weights" / "mnist-classifier.pt", "classifier")
    sevens = client.post(f"/v1/models/{VQVAE}/sample?format=array", json={"n": 10, "seed": 0, "labels": [7]}).json()
    assert (sevens["guidance"], sevens["temperature"]) == (0.75, 0.8)
    predicted = predict_probabilities(classifier, torch.tensor(sevens["arrays"])).argmax(1).numpy()
    assert (predicted == 7).sum() >= 9
    unlabelled = client.post(f"/v1/models/{VQVAE}/sample", json={"n": 10, "seed": 0}).json()
    assert len(unlabelled["labels"]) == 10 and len(set(unlabelled["labels"])) > 3  # a class drawn for each
    assert (unlabelled["guidance"], unlabelled["temperature"]) == (0.25, 0.9)


def test_the_torch_sampling_bench_times_a_prior_of_the_bundled_shape() -> None:
    # v_above is (layers - 1, N, channels, kernel // 2, W): the cached sampler's row-step input.
    v_above = manifest(VQVAE)["graphs"]["prior_row"]["inputs"][1]
    assert v_above["name"] == "v_above"
    layers, channels, half = v_above["shape"][0] + 1, v_above["shape"][2], v_above["shape"][3]
    assert (layers, channels, half) == (BUNDLED_PRIOR.layers, BUNDLED_PRIOR.channels, BUNDLED_PRIOR.kernel // 2)


def test_the_bundled_vqvae_reads_back_as_its_torch_models() -> None:
    """What `--vqvae/--prior exported_models/mnist-vqvae/N` trains and evaluates with (training/export/readback.py)."""
    package = BUNDLED / VQVAE / str(NEWEST[VQVAE])
    vqvae, prior = load_model(package, "vqvae"), load_model(package, "prior")
    graphs = {name: ort.InferenceSession(str(package / f"{name}.onnx")) for name in ("encoder", "decoder", "prior")}
    codes = np.random.default_rng(0).integers(0, 512, (32, 7, 7))
    codebook = np.load(package / "codebook.npy")
    images = graphs["decoder"].run(None, {"z_q": np.ascontiguousarray(codebook[codes].transpose(0, 3, 1, 2))})[0]
    with torch.no_grad():
        assert np.array_equal(
            vqvae.encode(torch.from_numpy(images)).codes.numpy(), graphs["encoder"].run(None, {"image": images})[1]
        )
        labels = np.arange(32) % 11  # the classes and "no label"
        logits = prior.logits(torch.from_numpy(codes), torch.from_numpy(labels)).numpy()
    assert np.abs(logits - graphs["prior"].run(None, {"codes": codes, "labels": labels})[0]).max() <= 1e-4


def pixels(client: TestClient, path: str, body: dict, version: int | None = None) -> np.ndarray:
    """The (N, H, W) pixels a route answers with ?format=array (the bundled models are greyscale)."""
    query = {"format": "array"} | ({"version": version} if version else {})
    return np.array(client.post(path, json=body, params=query).json()["arrays"])[:, 0]


def samples_and_reconstructions(client: TestClient, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Eight prior samples (seed 0), and what the model makes of them when they are sent back."""
    samples = pixels(client, f"/v1/models/{model}/sample", {"n": 8, "seed": 0})
    return samples, pixels(client, f"/v1/models/{model}/reconstruct", {"arrays": samples.tolist()})


def test_the_vqvae_reconstructs_its_own_samples(client: TestClient) -> None:
    images, again = samples_and_reconstructions(client, VQVAE)
    assert images.shape == (8, 28, 28) and 0.05 < images.mean() < 0.35  # mostly dark, like MNIST
    assert np.mean((again - images) ** 2) < 0.003


def test_the_2d_vae_decodes_distinct_digits_across_its_latent_space(client: TestClient) -> None:
    corners = [[-1.5, -1.5], [1.5, -1.5], [-1.5, 1.5], [1.5, 1.5]]
    images = pixels(client, f"/v1/models/{VAE_2D}/decode", {"latents": corners})
    assert images.shape == (4, 28, 28) and images.min() >= 0 and images.max() <= 1
    distances = [np.abs(images[i] - images[j]).mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(distances) > 0.05  # far-apart latents decode to different pictures
    encoded = client.post(f"/v1/models/{VAE_2D}/encode", json={"arrays": images.tolist()}).json()["mean"]
    assert np.allclose(np.sign(encoded), np.sign(corners))  # and each lands back in its own quadrant


def test_the_best_vae_has_the_best_likelihood_and_reconstructs_its_samples(client: TestClient) -> None:
    best = manifest(VAE)["metrics"]
    assert best["nll"] <= 88 < manifest(VAE, 1)["metrics"]["nll"] < manifest(VAE_2D)["metrics"]["nll"]
    assert best["active_units"] == 20
    sampled, again = samples_and_reconstructions(client, VAE)
    assert np.mean((again - sampled) ** 2) < 0.01


def test_the_frey_vae_is_kingma_and_welling_s_face_model(client: TestClient) -> None:
    bundled = manifest(FREY_VAE)
    assert bundled["image_shape"] == [1, 28, 20] and bundled["latent_shape"] == [2]  # 28 rows, 20 columns
    assert bundled["likelihood"] == "gaussian" and "manifold.png" in bundled["files"]
    assert bundled["metrics"]["active_units"] == 2 and bundled["training"]["dataset"] == "frey_faces.npz"
    faces = client.post(f"/v1/models/{FREY_VAE}/decode?format=array", json={"latents": [[0.0, 0.0], [1.5, -1.5]]})
    pixels = np.asarray(faces.json()["arrays"])
    assert pixels.shape == (2, 1, 28, 20) and 0.2 < pixels.mean() < 0.8  # a grey face, not a blank
    assert np.abs(pixels[0] - pixels[1]).mean() > 0.01  # the latent moves the face


def test_the_frey_vqvae_meets_its_target_and_serves_faces(client: TestClient) -> None:
    bundled = manifest(FREY_VQVAE)
    assert bundled["image_shape"] == [1, 28, 20] and bundled["latent_shape"][1:] == [7, 5]
    assert bundled["metrics"]["mse"] <= 0.002 and "skipped" in bundled["evaluation"]  # no face classifier
    face = client.post(f"/v1/models/{FREY_VQVAE}/sample?format=array", json={"n": 2, "seed": 0}).json()
    assert np.asarray(face["codes"]).shape == (2, 7, 5) and np.asarray(face["arrays"]).shape == (2, 1, 28, 20)
    photo = Image.new("RGB", (640, 480), (128, 100, 90))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    files = {"images": ("photo.jpg", buffer.getvalue(), "image/jpeg")}
    encoded = client.post(f"/v1/models/{FREY_VQVAE}/encode?resize=crop", files=files).json()
    assert np.asarray(encoded["codes"]).shape == (1, 7, 5) and encoded["resize"]["from"] == [[3, 480, 640]]


def test_the_conditional_vae_draws_each_digit_s_style_as_every_class(client: TestClient) -> None:
    """The analogy through the service: each gallery digit's posterior mean decoded as 0..9, then classified."""
    bundled = manifest(CVAE)
    assert bundled["decoder_labels"] == 10 and bundled["metrics"]["analogy_accuracy"] >= 0.95
    files = [("images", (path.name, path.read_bytes(), "image/png")) for path in GALLERY_DIGITS]
    means = client.post(f"/v1/models/{CVAE}/encode", files=files).json()["mean"]
    rows = [pixels(client, f"/v1/models/{CVAE}/decode", {"latents": [z], "labels": list(range(10))}) for z in means]
    drawn = torch.from_numpy(np.concatenate(rows)[:, None]).float()  # (100, 1, 28, 28), row by row
    classifier = load_model(REPO / "training" / "weights" / "mnist-classifier.pt", "classifier")
    predicted = predict_probabilities(classifier, drawn).argmax(1).numpy()
    assert len(means) == 10 and (predicted == np.tile(np.arange(10), 10)).mean() >= 0.9


def test_the_beta_vae_keeps_fewer_nats_in_z_than_its_beta_1_twin(client: TestClient) -> None:
    beta_4, beta_1 = manifest(BETA_VAE), manifest(BETA_VAE, 1)
    assert beta_4["latent_shape"] == beta_1["latent_shape"] == [10]
    assert beta_4["metrics"]["kl"] < beta_1["metrics"]["kl"] and beta_1["metrics"]["nll"] < beta_4["metrics"]["nll"]
    body = {"latent": [0.0] * 10, "dimension": 0, "steps": 5}
    swept = {v: pixels(client, f"/v1/models/{BETA_VAE}/traverse", body, v) for v in (1, 2)}
    for images in swept.values():  # one dimension swept from -3 to 3 changes the picture
        assert images.shape == (5, 28, 28) and np.abs(images[0] - images[-1]).mean() > 0.02


def test_the_cifar_vqvae_reconstructs_test_photos_and_samples_a_chosen_class(client: TestClient) -> None:
    bundled = manifest(CIFAR_VQVAE)
    assert bundled["image_shape"] == [3, 32, 32] and bundled["latent_shape"][1:] == [8, 8]
    # Version 3's weights with the defaults its sweep chose on validation samples (docs/models/cifar10-vqvae.md)
    assert bundled["prior"] == {
        "conditional": True,
        "num_classes": 10,
        "labels_optional": True,
        "guidance": 2.0,
        "temperature": 1.0,
        "unlabelled": "any_class",
        "unlabelled_guidance": 2.0,
        "unlabelled_temperature": 1.0,
    }
    assert bundled["metrics"]["psnr"] >= 24.5 and bundled["metrics"]["codebook_usage"] >= 0.95
    before = manifest(CIFAR_VQVAE, 3)  # the same weights, sampled without guidance and from "no label"
    assert before["metrics"]["bits_per_code"] == pytest.approx(bundled["metrics"]["bits_per_code"], abs=1e-5)
    assert bundled["metrics"]["label_accuracy"] >= 0.8 and bundled["metrics"]["unconditional_frechet_distance"] <= 20
    files = [("images", (path.name, path.read_bytes(), "image/png")) for path in CIFAR_TEST_IMAGES]
    again = client.post(f"/v1/models/{CIFAR_VQVAE}/reconstruct?format=array", files=files).json()["arrays"]
    sent = np.stack(
        [np.asarray(Image.open(path), dtype=np.float32).transpose(2, 0, 1) / 255 for path in CIFAR_TEST_IMAGES]
    )
    assert len(CIFAR_TEST_IMAGES) == 10 and 10 * np.log10(1 / np.mean((np.asarray(again) - sent) ** 2)) >= 22
    labelled = client.post(f"/v1/models/{CIFAR_VQVAE}/sample?format=array", json={"n": 2, "seed": 0, "labels": [3, 8]})
    unlabelled = client.post(f"/v1/models/{CIFAR_VQVAE}/sample?format=array", json={"n": 2, "seed": 0})
    assert (
        np.asarray(labelled.json()["arrays"]).shape == np.asarray(unlabelled.json()["arrays"]).shape == (2, 3, 32, 32)
    )
    assert labelled.json()["codes"] != unlabelled.json()["codes"]  # the label reaches the prior
    wrong = client.post(f"/v1/models/{CIFAR_VQVAE}/sample", json={"n": 1, "labels": [10]})
    assert wrong.status_code == 422 and "10" in wrong.json()["error"]["message"]
    # Guidance and temperature: the package's defaults unless a request names them; a class drawn without labels.
    assert (labelled.json()["guidance"], labelled.json()["temperature"]) == (2.0, 1.0)
    assert unlabelled.json()["guidance"] == 2.0 and len(unlabelled.json()["labels"]) == 2
    guided = client.post(f"/v1/models/{CIFAR_VQVAE}/sample", json={"n": 2, "seed": 0, "labels": [3, 8], "guidance": 0})
    assert guided.json()["guidance"] == 0.0 and guided.json()["codes"] != labelled.json()["codes"]
    # Without labels, guidance steers the classes drawn (any_class); drawn from "no label" (version 3) it has none.
    assert client.post(f"/v1/models/{CIFAR_VQVAE}/sample", json={"n": 1, "guidance": 1.0}).json()["guidance"] == 1.0
    for body, version in (({"n": 1, "guidance": 1.0}, 3), ({"n": 1, "labels": [3], "guidance": -1}, 4)):
        refused = client.post(f"/v1/models/{CIFAR_VQVAE}/sample?version={version}", json=body)
        assert refused.status_code == 422, body
    unconditional = client.post(f"/v1/models/{FREY_VQVAE}/sample", json={"n": 1, "guidance": 1.0})
    assert unconditional.status_code == 422 and "guidance needs labels" in unconditional.json()["error"]["message"]


def photo(width: int, height: int) -> np.ndarray:
    """A smooth colour picture of width x height, uint8 (H, W, 3): the CIFAR test images, enlarged side by side."""
    tiles = [
        Image.open(path).convert("RGB").resize((width // 4, height // 2), Image.BICUBIC) for path in CIFAR_TEST_IMAGES
    ]
    canvas = Image.new("RGB", (width, height))
    for i, tile in enumerate(tiles[:8]):
        canvas.paste(tile, ((i % 4) * (width // 4), (i // 4) * (height // 2)))
    return np.asarray(canvas)


def test_the_size_free_vqvaes_take_photos_at_their_own_size_as_one_whole_pass_would(client: TestClient) -> None:
    for model, old in [(CIFAR_VQVAE, 2), (FREY_VQVAE, 1), (VQVAE, 6)]:  # same weights, now with free sides
        sizes = manifest(model)["size_free"]
        assert sizes["stride"] == 4 and sizes["trained_size"] == manifest(model, old)["image_shape"][1:]
        assert "size_free" not in manifest(model, old)
    picture = photo(1040, 360)  # wider than a 512-pixel tile: the service runs it in tiles
    sent = encode_png(picture)
    answer = client.post(f"/v1/models/{CIFAR_VQVAE}/reconstruct?format=array", files=[("images", sent)]).json()
    codes, rebuilt = np.asarray(answer["codes"]), np.asarray(answer["arrays"], np.float32)
    assert codes.shape == (1, 90, 260) and rebuilt.shape == (1, 3, 360, 1040)
    whole = ort.InferenceSession(str(BUNDLED / CIFAR_VQVAE / "4" / "encoder.onnx"))
    pixels = picture.transpose(2, 0, 1)[None].astype(np.float32) / 255
    z_e, whole_codes = whole.run(None, {"image": pixels})
    assert np.array_equal(codes, whole_codes)
    codebook = np.load(BUNDLED / CIFAR_VQVAE / "4" / "codebook.npy")
    decoder = ort.InferenceSession(str(BUNDLED / CIFAR_VQVAE / "4" / "decoder.onnx"))
    z_q = codebook[whole_codes].transpose(0, 3, 1, 2)
    assert np.abs(rebuilt - decoder.run(None, {"z_q": z_q})[0]).max() <= 1e-5
    assert 10 * np.log10(1 / np.mean((rebuilt - pixels) ** 2)) >= 24
    refused = client.post(f"/v1/models/{CIFAR_VQVAE}/encode?version=2", files=[("images", encode_png(picture))])
    assert refused.status_code == 422 and "32x32" in refused.json()["error"]["message"]  # the older version: one size

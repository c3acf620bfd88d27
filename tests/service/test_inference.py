"""The inference layer without HTTP."""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from contract.errors import InvalidInputError
from contract.sampling import sample_codes, sample_codes_cached
from service import inference, latent_paths, prior
from service.config import Settings
from service.package import LoadedModel
from service.registry import Registry
from service.sampling import SampleRequest, sample
from tests.conftest import TinyPipeline


@pytest.fixture(scope="module")
def model(tiny_pipeline: TinyPipeline) -> LoadedModel:
    registry = Registry(Settings(MODELS_DIR=tiny_pipeline.models))
    registry.load()
    return registry.get("tiny-uncond")


def test_nearest_codes_match_the_encoder(model: LoadedModel) -> None:
    images = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    encoded = inference.encode(model, images)
    assert np.array_equal(inference.nearest_codes(model, encoded["z_e"]), encoded["codes"])


def test_the_unconditional_package_carries_its_code_penalty(model: LoadedModel) -> None:
    assert model.code_penalty is not None and model.code_penalty.shape == (model.manifest.num_codes,)


def test_nearest_codes_add_the_code_penalty(model: LoadedModel) -> None:
    z = model.codebook[[3, 5]].reshape(2, -1, 1, 1)  # each exactly on a code
    penalty = np.zeros(model.manifest.num_codes, np.float32)
    assert inference.nearest_codes(replace(model, code_penalty=penalty), z).ravel().tolist() == [3, 5]
    penalty[3] = 1e9  # priced out: the vector goes to its next-best code instead
    assert inference.nearest_codes(replace(model, code_penalty=penalty), z).ravel()[0] != 3


def test_slerp_keeps_the_norm_between_equal_norm_endpoints() -> None:
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(latent_paths.slerp(a, b, 0), a) and np.allclose(latent_paths.slerp(a, b, 1), b)
    assert np.isclose(np.linalg.norm(latent_paths.slerp(a, b, 0.5)), 1.0)
    assert np.isclose(np.linalg.norm(latent_paths.lerp(a, b, 0.5)), np.sqrt(0.5))
    assert np.allclose(latent_paths.slerp(a, a, 0.3), a)  # parallel endpoints fall back to the line


def test_interpolation_endpoints_are_the_given_latents(model: LoadedModel) -> None:
    start, end = np.zeros((4, 7, 7), np.float32), np.ones((4, 7, 7), np.float32)
    result = latent_paths.interpolate(model, start, end, 4, "linear", quantize=False)
    assert np.allclose(result["latents"][0], start) and np.allclose(result["latents"][-1], end)
    assert result["images"].shape == (4, 1, 28, 28)


def test_images_accept_a_missing_channel_axis_for_greyscale_models(model: LoadedModel) -> None:
    assert inference.check_images(model, np.zeros((2, 28, 28))).shape == (2, 1, 28, 28)
    with pytest.raises(InvalidInputError, match="shape"):
        inference.check_images(model, np.zeros((2, 3, 28, 28)))
    with pytest.raises(InvalidInputError, match="no images"):
        inference.check_images(model, np.zeros((0, 1, 28, 28)))


def test_codes_must_be_integers(model: LoadedModel) -> None:
    with pytest.raises(InvalidInputError, match="integers"):
        inference.check_codes(model, np.full((1, 7, 7), 0.5))


@pytest.mark.parametrize("model_id, labels", [("tiny-uncond", None), ("tiny-vqvae", np.array([3, 0, 9, 9]))])
def test_fast_sampler_matches_the_full_prior_at_every_step(tiny_pipeline: TinyPipeline, model_id: str, labels) -> None:
    registry = Registry(Settings(MODELS_DIR=tiny_pipeline.models))
    registry.load()
    model = registry.get(model_id)
    cached = prior.onnx_steps(model)
    assert cached is not None and (cached.layers, cached.channels, cached.half) == (3, 8, 1)
    recorded = []
    position = cached.position
    cached.position = lambda *args: recorded.append(position(*args)) or recorded[-1]
    start, mask = np.zeros((4, 7, 7), np.int64), np.ones((4, 7, 7), bool)
    fast = sample_codes_cached(cached, start, mask, seed=11, labels=labels)
    full_prior = prior.graph_call(model, "prior", "codes", "labels")
    full = full_prior(fast, labels)  # logits at (i, j) depend only on the codes before it
    assert len(recorded) == 49
    for index, (logits, _) in enumerate(recorded):
        i, j = divmod(index, 7)
        np.testing.assert_allclose(logits, full[:, :, i, j], atol=1e-4, err_msg=f"step ({i}, {j})")
    assert np.array_equal(fast, sample_codes(full_prior, start, mask, seed=11, labels=labels))


def test_concurrent_sample_requests_run_as_one_and_draw_as_they_would_alone(tiny_pipeline: TinyPipeline) -> None:
    registry = Registry(Settings(MODELS_DIR=tiny_pipeline.models, BATCH_DELAY_MS=2000))
    registry.load()
    model = registry.get("tiny-vqvae")  # class-conditional: labels are merged too
    requests = [
        {"n": 2, "seed": 1, "labels": [3]},
        {"n": 3, "seed": 50, "temperature": 0.7, "top_k": 4, "labels": [0, 1, 2]},
        {
            "n": 1,
            "seed": 9,
            "labels": [5],
            "codes": np.zeros((7, 7), np.int64),
            "mask": np.arange(49).reshape(7, 7) > 20,
        },
    ]
    alone = [sample(model, SampleRequest(**request))["codes"] for request in requests]
    sampler = model.batchers["sample"]
    runs, run = [], sampler.run
    sampler.run = lambda feeds, should_stop: runs.append(len(feeds["seeds"])) or run(feeds, should_stop)
    announcements = [model.expecting("sample") for _ in requests]  # the batch waits for all three
    for announcement in announcements:
        announcement.__enter__()
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(sample, model, SampleRequest(**request)) for request in requests]
        time.sleep(0.2)
        for announcement in announcements:
            announcement.__exit__(None, None, None)
        together = [future.result()["codes"] for future in futures]
    assert runs == [6]  # one sampling run for the six rows
    for codes, expected in zip(together, alone, strict=True):
        assert np.array_equal(codes, expected)
    registry.close()

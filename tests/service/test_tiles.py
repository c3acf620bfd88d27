"""A size-free model's large inputs run in tiles whose halos cover the receptive fields: the result equals one
pass over the whole input (codes identical, pixels within 1e-5), at sizes whose tiles cut at awkward places, with
batching on (a request's tiles share one shape and merge with other requests' tiles) and off."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from contract.images import encode_png
from service import inference
from service.config import Settings
from service.package import LoadedModel, open_package
from tests.conftest import TinyPipeline
from tests.service.conftest import UNCONDITIONAL, b64, decode_png, make_client

# (height, width) multiples of the tiny models' stride 4; with TILE_SIZE=16 a tile's core is 4 codes, its encoder
# window 40 pixels and its decoder window 12 codes.
SIZES = [(28, 28), (44, 100), (100, 44), (4, 180), (124, 68)]


@pytest.fixture(scope="module")
def models(tiny_pipeline: TinyPipeline) -> dict[str, LoadedModel]:
    """The unconditional package opened twice: tiled in 16-pixel tiles, and whole (tiles larger than any input)."""
    folder = tiny_pipeline.unconditional_package
    return {
        name: open_package(folder, Settings(MODELS_DIR=tiny_pipeline.models, TILE_SIZE=size), ["CPUExecutionProvider"])
        for name, size in [("tiled", 16), ("whole", 4096)]
    }


@pytest.mark.parametrize("size", SIZES)
def test_tiled_encode_and_decode_equal_one_whole_pass(models: dict[str, LoadedModel], size: tuple[int, int]) -> None:
    tiled, whole = models["tiled"], models["whole"]
    images = np.random.default_rng(sum(size)).random((2, 1, *size), dtype=np.float32)
    assert whole.tile_plan("encoder", images).single and tiled.tile_plan("encoder", images).single == (size == (28, 28))
    got, want = inference.encode(tiled, images), inference.encode(whole, images)
    z_e = whole.sessions["encoder"].run(["z_e"], {"image": images})[0]
    assert np.array_equal(got["codes"], want["codes"]) and got["codes"].shape == (2, size[0] // 4, size[1] // 4)
    assert np.abs(got["z_e"] - z_e).max() <= 1e-5
    pixels = inference.decode_codes(tiled, want["codes"])
    assert pixels.shape == images.shape
    assert np.abs(pixels - inference.decode_codes(whole, want["codes"])).max() <= 1e-5


def test_tiles_of_concurrent_requests_of_several_sizes_each_get_their_own_answer(
    tiny_pipeline: TinyPipeline, models: dict[str, LoadedModel]
) -> None:
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, size, dtype=np.uint8) for size in SIZES * 2]
    with make_client(tiny_pipeline, TILE_SIZE=16, MAX_BATCH_SIZE=8) as client:

        def encode(pixels: np.ndarray) -> list:
            response = client.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", encode_png(pixels))])
            assert response.status_code == 200, response.text
            return response.json()["codes"][0]

        with ThreadPoolExecutor(len(photos)) as pool:
            answers = list(pool.map(encode, photos))
    for pixels, codes in zip(photos, answers, strict=True):
        alone = inference.encode(models["whole"], pixels[None, None].astype(np.float32) / 255)["codes"][0]
        assert np.array_equal(np.array(codes), alone)


def zero_width_png() -> bytes:
    real = encode_png(np.zeros((4, 4), np.uint8))
    return real[:16] + (0).to_bytes(4, "big") + real[20:]


@pytest.mark.parametrize(
    "route, request_options, status, words",
    [
        ("encode", {"files": [("images", encode_png(np.zeros((1, 100000), np.uint8)))]}, 422, "100000x4"),
        ("encode", {"files": [("images", zero_width_png())]}, 422, "PNG or JPEG"),
        ("decode", {"json": {"codes": [[[]]]}}, 422, "h, w >= 1"),
        ("decode", {"json": {"codes": []}}, 422, "codes"),
        ("decode", {"json": {"codes": [[[1] * 7] * 7, [[1] * 8] * 8]}}, 422, "rectangular"),
        ("decode", {"json": {"codes": np.zeros((1, 1024, 1024), int).tolist()}}, 413, "at most 8388608 pixels"),
        ("encode", {"files": [("images", encode_png(np.zeros((2048, 2048), np.uint8)))] * 3}, 413, "at most"),
    ],
)
def test_bad_sizes_get_a_clear_4xx(
    tiny_pipeline: TinyPipeline, route: str, request_options: dict, status: int, words: str
) -> None:
    with make_client(tiny_pipeline, MAX_REQUEST_PIXELS=2048 * 4096) as client:
        response = client.post(f"/v1/models/{UNCONDITIONAL}/{route}", **request_options)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_native_pads_a_thin_strip_and_crops_it_back(client: TestClient) -> None:
    strip = encode_png(np.random.default_rng(0).integers(0, 256, (1, 1000), dtype=np.uint8))
    response = client.post(
        f"/v1/models/{UNCONDITIONAL}/reconstruct", params={"resize": "native"}, files=[("images", strip)]
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert np.array(answer["codes"]).shape == (1, 1, 250)
    assert answer["resize"] == {"mode": "native", "to": [[1, 4, 1000]], "from": [[1, 1, 1000]]}
    assert decode_png(answer["images"][0]).shape == (1, 1000)


def test_interpolation_between_two_photos_of_one_size_runs_at_that_size(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    start, end = (b64(encode_png(rng.integers(0, 256, (20, 36), dtype=np.uint8))) for _ in range(2))
    url = f"/v1/models/{UNCONDITIONAL}/interpolate?format=array"
    answer = client.post(url, json={"start": {"image": start}, "end": {"image": end}, "steps": 3})
    assert answer.status_code == 200, answer.text
    assert np.array(answer.json()["arrays"]).shape == (3, 1, 20, 36)
    other = b64(encode_png(rng.integers(0, 256, (20, 40), dtype=np.uint8)))
    refused = client.post(url, json={"start": {"image": start}, "end": {"image": other}, "steps": 3})
    assert refused.status_code == 422, refused.text

"""No request can spoil another's answer: random mixes of valid and invalid Open Inference Protocol requests,
sent concurrently through the batchers of every graph (the Fast PixelCNN step graphs with their cache inputs
included). Every valid request must get exactly the answer it gets alone; every invalid one a 4xx.

The invalid kinds are those a batcher could be fooled by: inputs that disagree on the batch size (alone each is
refused, but two of them concatenated can add up to a consistent total), a wrong shape off the batch axis, a
wrong datatype and values out of range. The size-free graphs take images and grids of several shapes at once, which
must never share a run.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.package import SIZE_FREE_GRAPHS, LoadedModel, dummy_input
from tests.conftest import TinyPipeline
from tests.service.conftest import make_client

GRAPHS = [
    ("tiny-uncond", "encoder"),
    ("tiny-uncond", "decoder"),
    ("tiny-uncond", "prior"),
    ("tiny-uncond", "prior_row"),
    ("tiny-uncond", "prior_position"),
    ("tiny-vqvae", "prior"),  # class-conditional: codes and labels
    ("tiny-vqvae", "prior_row"),
    ("tiny-vqvae", "prior_position"),
    ("tiny-cvae", "decoder"),  # z and labels
    ("tiny-vae", "encoder"),
]
INVALID = ["rows_disagree", "wrong_shape", "wrong_datatype", "out_of_range"]


def input_shape(spec, rows: int, model: LoadedModel, graph: str, scale: tuple[int, int]) -> list[int]:
    """rows on the batch axis (-1); a size-free graph's height and width its training size's times `scale`."""
    shape = [rows if d == -1 else d for d in spec.shape]
    if model.manifest.size_free and graph in SIZE_FREE_GRAPHS:
        trained = dummy_input(model.manifest, graph, spec).shape[-2:]
        shape[-2:] = [side * times for side, times in zip(trained, scale, strict=True)]
    return shape


def random_input(spec, shape: list[int], model: LoadedModel, rng: np.random.Generator) -> np.ndarray:
    if spec.dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    bound = {"labels": max(1, model.manifest.decoder_labels or getattr(model.manifest.prior, "num_classes", 0))}.get(
        spec.name,
        (model.manifest.num_codes or 1) + (spec.name != "codes"),  # the steps read K as "outside"
    )
    return rng.integers(0, bound, shape, dtype=np.int64)


def tensor(name: str, array: np.ndarray, datatype: str | None = None) -> dict:
    datatype = datatype or {"float32": "FP32", "int64": "INT64"}[str(array.dtype)]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


def make_request(model: LoadedModel, graph: str, rows: int, kind: str, seed: int) -> tuple[list[dict], dict]:
    """The JSON inputs of one request and the feeds they stand for (for the answer alone). Size-free graphs get
    images and grids of several shapes, so that rows of different shapes queue together."""
    rng = np.random.default_rng(seed)
    scale = tuple(int(times) for times in rng.integers(1, 3, 2))
    specs = model.manifest.graphs[graph].inputs
    shapes = {spec.name: input_shape(spec, rows, model, graph, scale) for spec in specs}
    feeds = {spec.name: random_input(spec, shapes[spec.name], model, rng) for spec in specs}
    inputs = {name: tensor(name, array) for name, array in feeds.items()}
    first = specs[0]
    if kind == "rows_disagree":
        if len(specs) > 1:  # one input a row longer than the others
            last = specs[-1]
            longer = input_shape(last, rows + 1, model, graph, scale)
            inputs[last.name] = tensor(last.name, random_input(last, longer, model, rng))
        else:  # a single input cannot disagree with itself: give it a wrong shape instead
            kind = "wrong_shape"
    if kind == "wrong_shape":  # fixed axes a step longer; a size-free input loses an axis
        shape = [rows if d == -1 else d + 1 for d in first.shape]
        if model.manifest.size_free and graph in SIZE_FREE_GRAPHS:
            shape = shapes[first.name][:-1]
        inputs[first.name] = tensor(first.name, random_input(first, shape, model, rng))
    elif kind == "wrong_datatype":
        inputs[first.name]["datatype"] = "INT64" if first.dtype == "float32" else "FP32"
    elif kind == "out_of_range":
        if first.dtype == "float32":
            inputs[first.name]["data"][0] = 1e39  # beyond float32: inf
        else:
            inputs[first.name]["data"][0] = -1
    return list(inputs.values()), feeds


def alone(model: LoadedModel, graph: str, feeds: dict) -> dict[str, np.ndarray]:
    names = [t.name for t in model.manifest.graphs[graph].outputs]
    return dict(zip(names, model.sessions[graph].run(None, feeds), strict=True))


def slow_runs(client: TestClient, delay: float) -> list[int]:
    """Every graph run takes `delay` longer, so that concurrent requests queue up and merge; returns the
    list that records each run's batch size."""
    sizes: list[int] = []
    lock = threading.Lock()
    for model in client.app.state.registry.all_models():
        run_now = model.run_now

        def slowed(graph: str, feeds: dict, run_now=run_now) -> list[np.ndarray]:
            time.sleep(delay)
            with lock:
                sizes.append(next(iter(feeds.values())).shape[0])
            return run_now(graph, feeds)

        model.run_now = slowed
    return sizes


request_plans = st.lists(
    st.tuples(
        st.integers(0, len(GRAPHS) - 1),
        st.integers(1, 3),  # rows
        st.sampled_from(["valid", "valid", *INVALID]),
        st.integers(0, 2**16),
    ),
    min_size=8,
    max_size=24,
)


def test_concurrent_valid_and_invalid_requests_each_get_their_own_answer(tiny_pipeline: TinyPipeline) -> None:
    with make_client(tiny_pipeline) as client:
        registry = client.app.state.registry
        sizes = slow_runs(client, 0.02)
        merged = []

        @given(plan=request_plans)
        @settings(
            max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(plan: list[tuple[int, int, str, int]]) -> None:
            sizes.clear()
            requests = []
            for graph_index, rows, kind, seed in plan:
                model_id, graph = GRAPHS[graph_index]
                model = registry.get(model_id)
                inputs, feeds = make_request(model, graph, rows, kind, seed)
                requests.append((model, graph, kind, inputs, feeds))

            def send(request: tuple) -> object:
                model, graph, _, inputs, _ = request
                return client.post(f"/v2/models/{model.id}.{graph}/infer", json={"inputs": inputs})

            with ThreadPoolExecutor(len(requests)) as pool:
                responses = list(pool.map(send, requests))
            for (model, graph, kind, _, feeds), response in zip(requests, responses, strict=True):
                if kind != "valid":
                    assert 400 <= response.status_code < 500, (graph, kind, response.status_code, response.text)
                    continue
                assert response.status_code == 200, (graph, response.text)
                expected = alone(model, graph, feeds)
                for output in response.json()["outputs"]:
                    got = np.array(output["data"]).reshape(output["shape"])
                    want = expected[output["name"]]
                    assert got.shape == want.shape, (graph, output["name"])
                    if want.dtype == np.int64:
                        assert np.array_equal(got, want), (graph, output["name"])
                    else:
                        assert np.allclose(got, want, rtol=1e-4, atol=1e-5), (graph, output["name"])
            merged.append(max(sizes, default=0))

        check()
    assert max(merged) > 3, "no run merged several requests: the test did not exercise batching"

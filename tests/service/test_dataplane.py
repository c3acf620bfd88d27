"""The Open Inference Protocol's data plane without a transport: what both fronts (HTTP v2 and gRPC) hand it and
what it answers. The fronts' own tests (test_protocol.py, test_grpc.py) check that they only convert."""

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from contract.errors import InvalidInputError, NotFoundError
from service import dataplane
from service.config import Settings
from service.dataplane import InferenceRequest, InputTensor
from service.registry import Registry
from tests.conftest import TinyPipeline

GRAPH = "tiny-uncond.encoder"


@pytest.fixture(scope="module")
def registry(tiny_pipeline: TinyPipeline) -> Iterator[Registry]:
    loaded = Registry(Settings(MODELS_DIR=tiny_pipeline.models))
    loaded.load()
    yield loaded
    loaded.close()


def image_tensor(images: np.ndarray, *, raw: bool) -> InputTensor:
    contents = images.tobytes() if raw else images.ravel().tolist()
    return InputTensor(name="image", datatype="FP32", shape=list(images.shape), contents=contents)


def infer(registry: Registry, inputs: list[InputTensor], name: str = GRAPH, **fields) -> dataplane.InferenceResponse:
    request = InferenceRequest(model_name=name, model_version=None, inputs=inputs, **fields)
    return asyncio.run(dataplane.infer(registry, request, Settings(MAX_IMAGES=16)))


def test_raw_bytes_and_values_give_the_same_answer(registry: Registry) -> None:
    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    raw = infer(registry, [image_tensor(images, raw=True)], id="a")
    values = infer(registry, [image_tensor(images, raw=False)])
    assert list(raw.outputs) == ["z_e", "codes"] and raw.id == "a" and raw.model_version == "1"
    assert np.array_equal(raw.outputs["codes"], values.outputs["codes"]) and raw.outputs["codes"].shape == (3, 7, 7)


def test_only_the_outputs_asked_for_come_back(registry: Registry) -> None:
    images = np.zeros((1, 1, 28, 28), np.float32)
    assert list(infer(registry, [image_tensor(images, raw=True)], outputs=["codes"]).outputs) == ["codes"]
    with pytest.raises(InvalidInputError, match="unknown outputs"):
        infer(registry, [image_tensor(images, raw=True)], outputs=["logits"])


@pytest.mark.parametrize(
    "inputs, words",
    [
        ([InputTensor(name="picture", datatype="FP32", shape=[1], contents=[0.0])], "unknown input 'picture'"),
        ([image_tensor(np.zeros((1, 1, 28, 28), np.float32), raw=True)] * 2, "given twice"),
        ([], "missing inputs"),
        ([InputTensor(name="image", datatype="INT64", shape=[1, 1, 28, 28], contents=[0] * 784)], "takes FP32"),
        ([InputTensor(name="image", datatype="BYTES", shape=[1], contents=[])], "takes FP32"),
        ([InputTensor(name="image", datatype="FP32", shape=[1, 1, 28, 28], contents=None)], "carries no data"),
        ([InputTensor(name="image", datatype="FP32", shape=[1, 1, 28, 28], contents=b"\0" * 7)], "whole number"),
        ([InputTensor(name="image", datatype="FP32", shape=[1, 1, 28, 27], contents=[0.0] * 756)], "multiples of 4"),
        ([InputTensor(name="image", datatype="FP32", shape=[2, 1, 28, 28], contents=[0.0] * 784)], "do not fill"),
        ([InputTensor(name="image", datatype="FP32", shape=[0, 1, 28, 28], contents=[])], "batch size must be"),
        ([InputTensor(name="image", datatype="FP32", shape=[1], contents=["a"])], "numbers"),
        ([image_tensor(np.full((1, 1, 28, 28), np.nan, np.float32), raw=True)], "NaN"),
        ([image_tensor(np.zeros((17, 1, 28, 28), np.float32), raw=True)], "batch size must be 1..16"),
    ],
)
def test_bad_inputs_are_refused_by_name(registry: Registry, inputs: list[InputTensor], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        infer(registry, inputs)


def test_codes_and_labels_are_checked_against_the_model(registry: Registry) -> None:
    codes = InputTensor(name="codes", datatype="INT64", shape=[1, 7, 7], contents=[16] * 49)
    with pytest.raises(InvalidInputError, match=r"codes must lie in \[0, 16\)"):
        infer(registry, [codes], name="tiny-uncond.prior")
    labelled = [
        InputTensor(name="codes", datatype="INT64", shape=[1, 7, 7], contents=[0] * 49),
        InputTensor(name="labels", datatype="INT64", shape=[1], contents=[99]),
    ]
    with pytest.raises(InvalidInputError, match="labels must lie in"):
        infer(registry, labelled, name="tiny-vqvae.prior")


@pytest.mark.parametrize(
    "name, version, words",
    [
        ("encoder", None, "graphs are named <model>.<graph>"),
        ("nothing.encoder", None, "no model 'nothing'"),
        ("...encoder", None, "no such model"),
        ("tiny-uncond." + "x" * 1000, None, "has no graph"),
        (GRAPH, "x", "a version is a number"),
        (GRAPH, "9" * 30, "a version is a number"),
        (GRAPH, "7", "has no version 7"),
    ],
)
def test_names_that_find_no_graph(registry: Registry, name: str, version: str | None, words: str) -> None:
    with pytest.raises(NotFoundError, match=words) as error:
        dataplane.resolve(registry, name, version)
    assert len(error.value.message) < 300  # a long name is never echoed whole


def test_metadata_marks_the_batch_axis_and_the_free_sides(registry: Registry) -> None:
    found = dataplane.graph_metadata(registry, GRAPH, None)
    assert found["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, -1, -1]}]
    assert [t["name"] for t in found["outputs"]] == ["z_e", "codes"] and found["versions"] == ["1"]

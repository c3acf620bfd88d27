import pytest
from pydantic import ValidationError

from contract.manifest import Manifest, read_manifest
from tests.conftest import TinyPipeline


@pytest.fixture
def manifest_data(tiny_pipeline: TinyPipeline) -> dict:
    return read_manifest(tiny_pipeline.package).model_dump()


def test_round_trip(manifest_data: dict) -> None:
    assert Manifest.model_validate(manifest_data).model_dump() == manifest_data


@pytest.mark.parametrize(
    "change, message",
    [
        ({"id": "../escape"}, "pattern"),
        ({"version": 0}, "greater than or equal to 1"),
        ({"kind": "gan"}, "vqvae"),
        ({"opset": 11}, "greater than or equal to 17"),
        ({"num_codes": None}, "num_codes and code_dim"),
        ({"unexpected": 1}, "Extra inputs"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_invalid_manifests_are_rejected(manifest_data: dict, change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Manifest.model_validate({**manifest_data, **change})


def test_graph_files_must_be_listed_with_digests(manifest_data: dict) -> None:
    files = {k: v for k, v in manifest_data["files"].items() if k != "prior.onnx"}
    with pytest.raises(ValidationError, match="prior.onnx"):
        Manifest.model_validate({**manifest_data, "files": files})
    graphs = {k: v for k, v in manifest_data["graphs"].items() if k != "decoder"}
    with pytest.raises(ValidationError, match="decoder"):
        Manifest.model_validate({**manifest_data, "graphs": graphs})


def test_class_frequencies_are_one_chance_per_class_summing_to_one(manifest_data: dict) -> None:
    classes = manifest_data["prior"]["num_classes"]
    assert classes > 1
    fair = [1 / classes] * classes
    prior = {**manifest_data["prior"], "class_frequencies": fair}
    assert Manifest.model_validate({**manifest_data, "prior": prior}).prior.class_frequencies == fair
    for wrong in (fair[:-1], [2 / classes] * classes, [-1.0] + [2 / (classes - 1)] * (classes - 1)):
        with pytest.raises(ValidationError, match="class_frequencies|greater than or equal"):
            Manifest.model_validate({**manifest_data, "prior": {**prior, "class_frequencies": wrong}})

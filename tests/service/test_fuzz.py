"""Schemathesis fuzzes every operation of the service's own OpenAPI schema: nothing may answer 5xx.

The operations are driven from a plain test with Hypothesis (schemathesis' pytest fixture loader
does not work with pytest 9), against real tiny models so that generated bodies reach inference.
"""

import os
from collections import Counter
from itertools import cycle

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from service.config import Settings
from service.main import create_app
from tests.conftest import TinyPipeline

MODELS = ["tiny-uncond", "tiny-vqvae", "tiny-vae", "tiny-cvae", "no-such-model"]
# The Open Inference Protocol's graphs, the Fast PixelCNN steps with their cache inputs among them.
GRAPHS = [
    "tiny-uncond.encoder",
    "tiny-uncond.decoder",
    "tiny-uncond.prior_row",
    "tiny-uncond.prior_position",
    "tiny-vqvae.prior",
    "tiny-vqvae.prior_row",
    "tiny-vqvae.prior_position",
    "tiny-cvae.decoder",
    "tiny-vae.encoder",
    "no-such-model.encoder",
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))  # per operation; raise it for a deeper local run
# Derandomized: the same cases every run, so CI cannot fail on an unlucky draw; FUZZ_EXAMPLES explores further.


def test_no_operation_answers_with_a_server_error(tiny_pipeline: TinyPipeline) -> None:
    # Small limits keep every generated request cheap; the lifespan (model loading) runs once here.
    limits = {"MAX_IMAGES": 4, "MAX_SAMPLES": 4, "MAX_STEPS": 6, "MAX_ITERATIONS": 3}
    app = create_app(Settings(MODELS_DIR=tiny_pipeline.models, **limits))
    models, graphs = cycle(MODELS), cycle(GRAPHS)
    failures, statuses = [], Counter()
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 20

        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                derandomize=True,
            )
            def call(case: schemathesis.Case) -> None:
                parameters = case.path_parameters or {}
                if "model_id" in parameters:
                    parameters["model_id"] = next(models)  # real models, so bodies reach inference
                if "name" in parameters:
                    parameters["name"] = next(graphs)
                response = case.call()
                statuses[response.status_code // 100] += 1
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                    )

            call()
    assert not failures, "\n".join(failures[:10])
    assert statuses[2] >= 25 and statuses[4] >= 25, statuses  # both valid and invalid requests were generated

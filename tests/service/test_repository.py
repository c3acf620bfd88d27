"""Repository control without a restart: a version dropped into MODELS_DIR takes traffic under load with no failed
request (MODEL_CONTROL=poll); models loaded and unloaded by name (explicit), a corrupt version refused with the
reason while the old one serves, and the control routes behind the API key."""

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TinyPipeline
from tests.service.conftest import digit_png
from tools.local_server import serving


def models_folder(tiny_pipeline: TinyPipeline, root: Path) -> Path:
    shutil.copytree(tiny_pipeline.package.parent.parent / "tiny-uncond" / "1", root / "tiny-uncond" / "1")
    shutil.copytree(tiny_pipeline.vae_package, root / "tiny-vae" / "1")
    return root


def add_version(root: Path, model: str, version: int, corrupt: bool = False) -> None:
    """A new version the way the exporter writes one: into a hidden folder, then renamed into place."""
    staging = root / model / f".{version}.partial"
    shutil.copytree(root / model / "1", staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    (staging / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    if corrupt:
        (staging / "codebook.npy").write_bytes(b"changed")
    staging.rename(root / model / str(version))


def test_a_new_version_takes_traffic_under_load_and_no_request_fails(tiny_pipeline: TinyPipeline, tmp_path) -> None:
    root = models_folder(tiny_pipeline, tmp_path / "models")
    answers: list = []
    stop = threading.Event()
    settings = {"MODELS_DIR": root, "MODEL_CONTROL": "poll", "POLL_SECONDS": 0.3, "LOG_LEVEL": "warning"}
    with serving(**settings) as (url, _):

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    files = {"images": ("d.png", digit_png(), "image/png")}
                    response = http.post("/v1/models/tiny-uncond/encode", files=files)
                    answers.append((response.status_code, response.json().get("version")))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1)
        add_version(root, "tiny-uncond", 2)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/v1/models/tiny-uncond").json()["version"] != 2:
            assert time.monotonic() < deadline, "version 2 was not picked up"
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        for thread in clients:
            thread.join(30)
        shutil.rmtree(root / "tiny-uncond" / "1")  # a removed version is unloaded
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/v1/models/tiny-uncond").json()["versions"] != [2]:
            assert time.monotonic() < deadline, "version 1 was not unloaded"
            time.sleep(0.2)
    statuses = {status for status, _ in answers}
    versions = [version for _, version in answers]
    assert statuses == {200}, statuses
    assert versions[0] == 1 and versions[-1] == 2 and versions.index(2) > 0
    print(f"\nhot reload under 4 clients: {len(answers)} requests, 0 failed, {versions.count(2)} on the new version")


@pytest.fixture
def explicit(tiny_pipeline: TinyPipeline, tmp_path):
    root = models_folder(tiny_pipeline, tmp_path / "models")
    settings = {"MODELS_DIR": root, "MODEL_CONTROL": "explicit", "LOG_LEVEL": "warning", "MAX_SAMPLES": 20000}
    with serving(**settings, MAX_QUEUE_ROWS=100000) as (url, _):
        yield root, url


def test_unload_answers_404_and_lets_running_requests_finish(explicit) -> None:
    _, url = explicit
    running: list = []

    def long_sample() -> None:
        response = httpx.post(f"{url}/v1/models/tiny-uncond/sample", json={"n": 20000, "seed": 0}, timeout=120)
        running.append(response.status_code)

    sampler = threading.Thread(target=long_sample)
    sampler.start()
    time.sleep(0.5)
    assert httpx.post(f"{url}/v2/repository/models/tiny-uncond/unload").status_code == 200
    assert httpx.get(f"{url}/v1/models/tiny-uncond").status_code == 404
    sampler.join(120)
    assert running == [200]
    index = httpx.post(f"{url}/v2/repository/index").json()
    assert {entry["name"] for entry in index} == {"tiny-vae"}
    assert httpx.post(f"{url}/v2/repository/models/tiny-uncond/load").status_code == 200  # and back
    assert httpx.get(f"{url}/v1/models/tiny-uncond").json()["version"] == 1


def test_a_corrupt_version_is_refused_with_the_reason_and_the_old_one_serves(explicit) -> None:
    root, url = explicit
    add_version(root, "tiny-uncond", 2, corrupt=True)
    assert httpx.post(f"{url}/v2/repository/models/tiny-uncond/load").status_code == 200  # version 1 still loads
    described = httpx.get(f"{url}/v1/models/tiny-uncond").json()
    assert described["version"] == 1 and described["versions"] == [1]
    index = {(e["name"], e["version"]): e for e in httpx.post(f"{url}/v2/repository/index").json()}
    assert index["tiny-uncond", "2"]["state"] == "UNAVAILABLE" and "sha256" in index["tiny-uncond", "2"]["reason"]
    unknown = httpx.post(f"{url}/v2/repository/models/nothing/load")
    assert unknown.status_code == 404 and "nothing" in unknown.json()["error"]


def test_control_needs_explicit_mode_and_the_api_key(tiny_pipeline: TinyPipeline, tmp_path) -> None:
    root = models_folder(tiny_pipeline, tmp_path / "models")
    with serving(MODELS_DIR=root, API_KEY="s3cret", LOG_LEVEL="warning") as (url, _):
        assert httpx.post(f"{url}/v2/repository/models/tiny-vae/unload").status_code == 401
        key = {"x-api-key": "s3cret"}
        refused = httpx.post(f"{url}/v2/repository/models/tiny-vae/unload", headers=key)
        assert refused.status_code == 400 and "MODEL_CONTROL=explicit" in refused.json()["error"]
        assert httpx.post(f"{url}/v2/repository/index", headers=key).status_code == 200

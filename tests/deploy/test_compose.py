"""docker-compose.yml and the load balancer's configuration, checked without a Docker engine."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.config import Settings
from tests.deploy.test_dockerfile import healthcheck

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HAPROXY = ROOT / "deploy" / "haproxy.cfg"
GPU = [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # safe_load merges the `<<: *service` keys as compose does


def test_compose_spec_schema_accepts_it() -> None:
    """check-jsonschema with the compose-spec schema that it ships: offline, no Docker needed."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose (v1) is not installed")
def test_docker_compose_config_accepts_it() -> None:
    """`docker-compose config` interpolates variables and merges anchors too; it needs no Docker engine."""
    env = {k: v for k, v in os.environ.items() if k not in ("COMPOSE_FILE", "COMPOSE_PROFILES")}
    result = subprocess.run(
        ["docker-compose", "--profile", "cpu", "--profile", "train", "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_service_cpu_profile_and_train_profile() -> None:
    services = compose()["services"]
    gpu, cpu, train = services["service"], services["service-cpu"], services["train"]
    assert "profiles" not in gpu and cpu["profiles"] == ["cpu"] and train["profiles"] == ["train"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == GPU
    assert train["deploy"]["resources"]["reservations"]["devices"] == GPU
    assert "resources" not in cpu["deploy"]
    assert gpu["build"]["args"]["VARIANT"] == "gpu" and cpu["build"]["args"]["VARIANT"] == "cpu"
    assert train["build"]["target"] == "train"
    # The service reads the models volume; training exports into the same one.
    assert "${MODELS_VOLUME:-models}:/app/exported_models:ro" in gpu["volumes"]
    assert "${MODELS_VOLUME:-models}:/app/exported_models" in train["volumes"]
    assert "python -m training export" in train["command"][0]


def test_services_share_the_image_healthcheck_and_every_setting() -> None:
    services = compose()["services"]
    for name in ("service", "service-cpu"):
        service = services[name]
        assert service["healthcheck"]["test"] == ["CMD", *healthcheck()[1]]
        # Drains for up to 30 s after SIGTERM: Docker must wait longer than that before it kills.
        assert int(service["stop_grace_period"].removesuffix("s")) > 30
        # Every setting but MODELS_DIR (fixed by the image and the volume) is passed through from the environment.
        assert set(service["environment"]) == set(Settings.model_fields) - {"MODELS_DIR"}
        assert "ports" not in service  # replicas would collide; the load balancer publishes the port


def test_load_balancer_spreads_over_every_replica_of_either_service() -> None:
    lb = compose()["services"]["lb"]
    assert lb["ports"] == ["${PORT:-8000}:8000"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    config = HAPROXY.read_text()
    assert "server-template gpu 1-32 service:8000" in config
    assert "server-template cpu 1-32 service-cpu:8000" in config
    assert "uri /health/ready" in config and "resolvers docker" in config


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is not installed")
@pytest.mark.parametrize("api_key", [None, "", "a-key"])
def test_haproxy_accepts_its_configuration(api_key: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    if api_key is not None:
        env["API_KEY"] = api_key
    result = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

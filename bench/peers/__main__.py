"""The service against the servers users would pick instead, side by side in one run: MLServer, LitServe,
BentoML and KServe's Python ModelServer, each serving the bundled mnist-vqvae encoder with onnxruntime on the CPU
(one intra-op thread, as ours) and its own recommended dynamic batching (KServe's Python server has none), each in
its own virtual environment made here from PyPI (.peers/).

    python -m bench.peers [--seconds 8] [--rounds 2] [--concurrency 1 8 32]     (make bench-peers)

One load generator drives all (bench.serving's closed-loop raw-socket clients): one-image requests in each server's
native format, and, where a peer speaks the Open Inference Protocol, the same v2 JSON request for both (outputs
named, so that neither answers with z_e too). Servers run one after the other, round after round, so the machine's
drift falls on all alike; each row's figures are medians over the rounds. Server CPU per request is read from /proc
for the server's whole process tree (MLServer, LitServe and BentoML run their inference in worker processes);
"client ms" is the load generator's own CPU per request, on the same cores.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import uvloop

from bench.serving import TICKS, closed_loop, digit_png, histogram, model_cpu_per_image, png_upload, post
from tools.local_server import free_port

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parent / "apps"
VENVS = ROOT / ".peers"
GRPC_PORT = free_port()
PEERS = {
    "mlserver": "mlserver==1.7.1",
    "litserve": "litserve==0.2.19",
    "bentoml": "bentoml==1.4.40",
    "kserve": "kserve==0.21.0",
}
RUNTIME = ["onnxruntime", "numpy", "pillow"]


def venv(name: str) -> Path:
    """The peer's own environment, made once."""
    python = VENVS / name / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEERS[name], *RUNTIME], check=True)
    return python


def tree_cpu(pid: int) -> float:
    """utime + stime of the process and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        todo += children.get(current, [])
    return total


@dataclass
class Server:
    name: str
    port: int
    argv: list[str]
    ready: str  # GET path that answers 200 once it serves
    requests: dict[str, bytes] = field(default_factory=dict)  # protocol -> one prepared HTTP request
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def oip_body() -> bytes:
    """One image as an Open Inference Protocol JSON request, asking for the codes only."""
    image = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32).round(4)
    tensor = {"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": image.ravel().tolist()}
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "codes"}]}).encode()


def binary_request(url: str, path: str = "/v2/models/mnist-vqvae.encoder/infer") -> bytes:
    """The same request with the tensor in the binary extension's tail, as tritonclient sends it by default."""
    image = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32).round(4)
    header = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28],
                          "parameters": {"binary_data_size": image.nbytes}}],
              "outputs": [{"name": "codes", "parameters": {"binary_data": True}}]}  # fmt: skip
    head = json.dumps(header).encode()
    request = post(url, path, head + image.tobytes(), "application/octet-stream")
    return request.replace(b"\r\n\r\n", f"\r\ninference-header-content-length: {len(head)}\r\n\r\n".encode(), 1)


async def grpc_loop(concurrency: int, seconds: float) -> tuple[list[float], dict[int, int]]:
    """The closed loop over gRPC: `concurrency` calls in flight on one channel, as tritonclient.grpc.aio makes them."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as rpc

    image = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32).round(4)
    request = pb.ModelInferRequest(model_name="mnist-vqvae.encoder", raw_input_contents=[image.tobytes()])
    request.inputs.add(name="image", datatype="FP32", shape=[1, 1, 28, 28])
    request.outputs.add(name="codes")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{GRPC_PORT}") as channel:
        stub = rpc.GRPCInferenceServiceStub(channel)

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await stub.ModelInfer(request)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, {200: len(latencies)}


def servers(encoder: Path) -> list[Server]:
    """Each server on its own port (a stopped one's port may linger), with its prepared requests."""
    ports = {name: free_port() for name in ("latentgen", *PEERS)}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    png = digit_png()
    upload = png_upload("peers")
    peer_env = {"PEER_ENCODER": str(encoder), "PEER_THREADS": "1", "PYTHONPATH": str(APPS)}
    url = urls["latentgen"]
    ours = Server(
        "latentgen",
        ports["latentgen"],
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(ports["latentgen"])],
        "/health/ready",
        {
            "native": post(url, "/v1/models/mnist-vqvae/encode", *upload),
            "v2-json": post(url, "/v2/models/mnist-vqvae.encoder/infer", oip_body(), "application/json"),
            "v2-binary": binary_request(url),
            "grpc": b"",  # driven by grpc_loop on GRPC_PORT instead
        },
        {"LOG_LEVEL": "warning", "GRPC_PORT": str(GRPC_PORT)},
    )
    settings = VENVS / "mlserver-repository"
    (settings / "encoder").mkdir(parents=True, exist_ok=True)
    (settings / "settings.json").write_text(
        json.dumps(
            {
                "http_port": ports["mlserver"],
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
            }
        )
    )
    (settings / "encoder" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "encoder",
                "implementation": "mlserver_runtime.EncoderRuntime",
                "max_batch_size": 64,
                "max_batch_time": 0.002,
            }
        )  # fmt: skip
    )
    mlserver = Server(
        "mlserver",
        ports["mlserver"],
        [str(VENVS / "mlserver" / "bin" / "mlserver"), "start", str(settings)],
        "/v2/health/ready",
        {"v2-json": post(urls["mlserver"], "/v2/models/encoder/infer", oip_body(), "application/json")},
        peer_env,
    )
    litserve = Server(
        "litserve",
        ports["litserve"],
        [str(VENVS / "litserve" / "bin" / "python"), str(APPS / "litserve_app.py")],
        "/health",
        {"native": post(urls["litserve"], "/predict", json.dumps({"image": b64(png)}).encode(), "application/json")},
        peer_env | {"PEER_PORT": str(ports["litserve"])},
    )
    bentoml = Server(
        "bentoml",
        ports["bentoml"],
        [
            str(VENVS / "bentoml" / "bin" / "bentoml"),
            "serve",
            "bentoml_service:Encoder",
            "--port",
            str(ports["bentoml"]),
        ],
        "/readyz",
        {"native": post(urls["bentoml"], "/encode", *upload)},
        peer_env,
        APPS,
    )
    kserve = Server(
        "kserve",
        ports["kserve"],
        [str(VENVS / "kserve" / "bin" / "python"), str(APPS / "kserve_model.py")],
        "/v2/health/ready",
        {
            "v2-json": post(urls["kserve"], "/v2/models/encoder/infer", oip_body(), "application/json"),
            "v2-binary": binary_request(urls["kserve"], "/v2/models/encoder/infer"),
        },
        peer_env | {"PEER_PORT": str(ports["kserve"]), "PEER_GRPC_PORT": str(free_port())},
    )
    return [ours, mlserver, litserve, bentoml, kserve]


def wait(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def measure(server: Server, concurrency: list[int], seconds: float) -> dict:
    url = f"http://127.0.0.1:{server.port}"
    env = {**os.environ, **server.env}
    log = open(VENVS / f"{server.name}.log", "w")  # noqa: SIM115 (closed with the process)
    quiet = {"stdout": log, "stderr": subprocess.STDOUT}
    # A session of its own: the peers fork workers, and stopping one must stop them all (and free its port).
    process = subprocess.Popen(server.argv, env=env, cwd=server.cwd, start_new_session=True, **quiet)
    found = {}
    try:
        wait(url + server.ready, process)
        for protocol, request in server.requests.items():
            uvloop.run(grpc_loop(8, 2) if protocol == "grpc" else closed_loop(url, request, 8, 2))  # warm-up
            for clients in concurrency:
                before_sum, before_count = histogram(url, "latentgen_batch_size", "mnist-vqvae", "encoder")
                cpu, client_cpu = tree_cpu(process.pid), time.process_time()
                load = (
                    grpc_loop(clients, seconds) if protocol == "grpc" else closed_loop(url, request, clients, seconds)
                )
                latencies, statuses = uvloop.run(load)
                used, client_used = tree_cpu(process.pid) - cpu, time.process_time() - client_cpu
                after_sum, after_count = histogram(url, "latentgen_batch_size", "mnist-vqvae", "encoder")
                answered = sum(statuses.values())
                ok = statuses.get(200, 0)
                batch = (after_sum - before_sum) / (after_count - before_count) if after_count > before_count else None
                found[protocol, clients] = {
                    "rate": ok / seconds,
                    "p50": float(np.percentile(latencies, 50) * 1000),
                    "p99": float(np.percentile(latencies, 99) * 1000),
                    "cpu_ms": used / max(answered, 1) * 1000,
                    "client_ms": client_used / max(answered, 1) * 1000,  # the load generator's share of the cores
                    "errors": answered - ok,
                    "batch": batch,
                }
    finally:
        stop(process)
    return found


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group, SIGKILL to what is left after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--only", nargs="*", help="server names to run (default: all)")
    args = parser.parse_args()
    encoder = max((ROOT / "exported_models" / "mnist-vqvae").glob("*/encoder.onnx"))
    for name in PEERS:
        venv(name)
    chosen = [s for s in servers(encoder) if not args.only or s.name in args.only]
    results: dict = {}
    for _ in range(args.rounds):
        for server in chosen:
            for key, value in measure(server, args.concurrency, args.seconds).items():
                results.setdefault((server.name, *key), []).append(value)
    print(
        f"encoder of version {encoder.parent.name}, {os.cpu_count()} CPUs, {args.seconds:g} s per cell, "
        f"medians of {args.rounds} rounds"
    )
    columns = [("server", "<10"), ("protocol", "<9"), ("clients", ">8"), ("req/s", ">8"), ("p50 ms", ">8")]
    columns += [("p99 ms", ">8"), ("CPU/req ms", ">11"), ("client ms", ">10"), ("batch", ">7"), ("errors", ">7")]
    print("".join(f"{name:{spec}}" for name, spec in columns))
    for (name, protocol, clients), rows in results.items():
        med = {k: float(np.median([r[k] for r in rows if r[k] is not None])) if any(r[k] is not None for r in rows)
               else None for k in rows[0]}  # fmt: skip
        batch = f"{med['batch']:.1f}" if med["batch"] is not None else "-"
        print(f"{name:<10}{protocol:<9}{clients:>8}{med['rate']:>8.0f}{med['p50']:>8.1f}{med['p99']:>8.1f}"
              f"{med['cpu_ms']:>11.3f}{med['client_ms']:>10.3f}{batch:>7}{med['errors']:>7.0f}")  # fmt: skip
    for batch in (1, 16):
        alone = model_cpu_per_image("mnist-vqvae", batch) * 1000
        print(f"the encoder alone, in-process, CPU per image at batch {batch}: {alone:.3f} ms")


if __name__ == "__main__":
    main()

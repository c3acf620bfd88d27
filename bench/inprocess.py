"""The app's own CPU per encode request, without uvicorn or sockets: 32 concurrent tasks call the ASGI app
in-process, each encoding one PNG at a time. The encoder is the real one, or a stub that answers at once
(`instant`: what the Python around the model costs) or that sleeps as long as the encoder would run
(`sleep`: the same, in the rhythm of a loaded server, whose event loop idles while a batch runs).
    python -m bench.inprocess [--encoder real|instant|sleep] [--requests 60] [--model mnist-vqvae]
"""

import argparse
import asyncio
import time

import numpy as np
import uvloop
from starlette.types import ASGIApp, Message

from bench.serving import model_cpu_per_image, requests_for
from service.config import Settings
from service.main import create_app
from service.package import LoadedModel


class StubEncoder:
    """Rows of one real encoder output, at once or after the encoder's CPU time for that many images."""

    def __init__(self, model: LoadedModel, seconds_per_image: float):
        images = np.random.default_rng(0).random((64, *model.manifest.image_shape), dtype=np.float32)
        self.outputs = model.sessions["encoder"].run(None, {"image": images})
        self.seconds_per_image = seconds_per_image

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows = len(feeds["image"])
        if self.seconds_per_image:
            time.sleep(rows * self.seconds_per_image)
        return [output[:rows] for output in self.outputs]


def scope_and_body(model_id: str) -> tuple[dict, bytes]:
    """The bench's raw multipart encode request as an ASGI scope and its body."""
    head, body = requests_for("http://127.0.0.1:1", model_id, (1, 1), False)["encode"].split(b"\r\n\r\n", 1)
    request_line, *header_lines = head.decode().split("\r\n")
    method, path, _ = request_line.split(" ")
    pairs = (line.split(":", 1) for line in header_lines)
    headers = [(name.lower().encode(), value.strip().encode()) for name, value in pairs]
    scope = {"type": "http", "http_version": "1.1", "method": method, "scheme": "http", "path": path}
    scope |= {"raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers}
    return scope | {"client": ("127.0.0.1", 1), "server": ("127.0.0.1", 1)}, body


async def encode_once(app: ASGIApp, scope: dict, body: bytes) -> None:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        return await asyncio.get_running_loop().create_future()  # the client never hangs up

    statuses = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(scope), receive, send)
    if statuses != [200]:
        raise RuntimeError(f"encode answered {statuses}")


async def measure(encoder: str, requests: int, model_id: str) -> None:
    app = create_app(Settings())
    scope, body = scope_and_body(model_id)
    async with app.router.lifespan_context(app):
        model = app.state.registry.get(model_id)
        if encoder != "real":
            seconds = model_cpu_per_image(model_id, 16) if encoder == "sleep" else 0.0
            model.sessions["encoder"] = StubEncoder(model, seconds)

        async def client(count: int) -> None:
            for _ in range(count):
                await encode_once(app, scope, body)

        await asyncio.gather(*(client(20) for _ in range(32)))  # warm-up
        blocks = []
        for _ in range(5):
            started = time.process_time()
            await asyncio.gather(*(client(requests) for _ in range(32)))
            blocks.append((time.process_time() - started) / (32 * requests) * 1000)
        print(f"encoder {encoder}: ms of CPU per request in 5 blocks: {' '.join(f'{b:.3f}' for b in blocks)}")
        print(f"median {np.median(blocks):.3f} ms, least {min(blocks):.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=["real", "instant", "sleep"], default="instant")
    parser.add_argument("--requests", type=int, default=60, help="per client and block")
    parser.add_argument("--model", default="mnist-vqvae")
    args = parser.parse_args()
    uvloop.run(measure(args.encoder, args.requests, args.model))


if __name__ == "__main__":
    main()

"""Every setting of the service, read from the environment (or a .env file) in one place. Out-of-range values stop
the service at start-up: MAX_BATCH_SIZE=0, say, would leave every batch empty and every request waiting."""

from importlib import metadata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


def service_version() -> str:
    """The installed package's version (pyproject.toml), as the OpenAPI schema and gRPC's ServerMetadata name it."""
    try:
        return metadata.version("latentgen")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    MODELS_DIR: Path = Path("exported_models")
    # "auto": CUDA then CPU when onnxruntime-gpu offers CUDA, else CPU; or a comma-separated list.
    PROVIDERS: str = "auto"
    REQUIRE_GPU: bool = False  # readiness fails rather than serve on the CPU
    INTRA_OP_THREADS: NonNegativeInt = 0  # 0: one per CPU core but one, which the event loop keeps
    LOG_LEVEL: Literal["debug", "info", "warning", "error"] = "info"
    # How long an idle keep-alive connection stays open. Longer than the idle timeouts of clients and load
    # balancers (60 s is common), so that the server is never the one closing a connection a client is reusing.
    KEEP_ALIVE_SECONDS: PositiveInt = 75

    # Dynamic batching (service/batching.py): rows per onnxruntime run (1 turns batching off), how long a
    # forming batch waits for announced requests, and the queue bound beyond which requests get 503.
    MAX_BATCH_SIZE: PositiveInt = 64
    # Unset: 5 ms on a GPU, where a larger batch costs little more than one image; 0 on the CPU, where each image costs
    # the same in any batch, so waiting only idles the model's core (batches still form while it is busy).
    BATCH_DELAY_MS: NonNegativeFloat | None = None
    MAX_QUEUE_ROWS: PositiveInt = 1024

    # Memory after large requests (memory.py): onnxruntime's CPU arena keeps the largest batch's activations for
    # good (off by default; its cost is in docs/performance.md); after a request that moved this many bytes
    # (body in and out; 0: never) or ran this many seconds (0: bytes only), glibc is asked to return freed pages to
    # the OS.
    ORT_CPU_ARENA: bool = False
    TRIM_AFTER_BYTES: NonNegativeInt = 1024 * 1024
    TRIM_AFTER_SECONDS: NonNegativeFloat = 0.25

    # The Open Inference Protocol over gRPC, beside HTTP (0: off); GRPC_HOST is the HTTP --host unless set.
    GRPC_PORT: Annotated[int, Field(ge=0, le=65535)] = 8001
    GRPC_HOST: str = "127.0.0.1"
    # What may change while serving (registry.py): none | poll (rescan MODELS_DIR every POLL_SECONDS) | explicit
    # (the repository API's load and unload; keep it off the internet, behind the API key)
    MODEL_CONTROL: Literal["none", "poll", "explicit"] = "none"
    POLL_SECONDS: PositiveFloat = 5.0

    API_KEY: str = ""  # when set, every route but liveness needs header X-API-Key (or Bearer token)
    MAX_BODY_BYTES: PositiveInt = 64 * 1024 * 1024  # a large photo as PNG takes tens of MiB
    MAX_IMAGES: PositiveInt = 256  # images per encode / reconstruct request
    MAX_IMAGE_PIXELS: PositiveInt = 4096 * 4096  # width x height of one uploaded image, read from its header
    # Pixels of all the images of one request together (a decode's codes count stride^2 pixels each), read from the
    # headers before any is decoded: 256 photos of 4096x4096 are refused, not attempted.
    MAX_REQUEST_PIXELS: PositiveInt = 2 * 4096 * 4096
    # A size-free model's encoder and decoder run larger inputs in tiles of this many pixels a side (rounded down to
    # a multiple of the stride), each with a halo that covers the receptive field: memory is bounded by one tile.
    TILE_SIZE: Annotated[int, Field(ge=16)] = 512
    MAX_SAMPLES: PositiveInt = 256  # samples per sample request
    MAX_STEPS: Annotated[int, Field(ge=2)] = 64  # interpolation and traversal steps
    MAX_ITERATIONS: PositiveInt = 500  # inpainting iterations

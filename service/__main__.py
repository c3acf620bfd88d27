"""`python -m service`: serve the models in MODELS_DIR with uvicorn, logging one JSON line per event."""

import argparse
import gc
import json
import logging
import sys

import uvicorn
from pydantic import ValidationError

from service.config import Settings
from service.main import create_app


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname.lower(), "logger": record.name}
        entry["message"] = record.getMessage()
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []  # propagate to the JSON handler instead


def quiet_collector() -> None:
    """Keeps the garbage collector's full passes short. Under load, in-flight requests' objects outlive the young
    generations, so full passes ran often over every object of the imported libraries, each a stop of the event loop
    that set the p99 latency (docs/experiments/2026-12-03-collector-pauses.md). Frozen, those objects are never
    scanned again; a larger first generation lets most of a request's objects die before a collection sees them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def read_settings() -> Settings:
    """The settings, or an exit that names every bad one: a container that will not start says what to fix, and a
    value such as MAX_BATCH_SIZE=0 never reaches a batcher that would then take no rows at all."""
    try:
        return Settings()
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg']}" for e in error.errors()]
        sys.exit("invalid settings: " + "; ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser("python -m service", description="Serve the exported models over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    settings = read_settings()
    if "GRPC_HOST" not in settings.model_fields_set:  # gRPC listens where HTTP does unless told otherwise
        settings = settings.model_copy(update={"GRPC_HOST": args.host})
    configure_logging(settings.LOG_LEVEL)
    # A batcher's worker needs the GIL back after each onnxruntime run; behind a busy event loop it waited up to
    # Python's default switch interval while the model's core idled (docs/experiments/2026-11-27-serving-path.md).
    sys.setswitchinterval(0.001)
    app = create_app(settings)
    quiet_collector()
    # One process: onnxruntime uses the cores the event loop leaves; scale out with replicas, not workers.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=settings.KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()

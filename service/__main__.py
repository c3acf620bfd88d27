"""`python -m service`: check and list the model packages (the HTTP service lands with issue 4)."""

import argparse
import logging

from service.config import Settings
from service.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser("python -m service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    registry = Registry(Settings())
    registry.load()
    for model in registry.all_models():
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in model.manifest.metrics.items())
        print(f"ready  {model.id}/{model.version}  {model.manifest.kind} on {model.provider}  {metrics}")
    for broken in registry.unavailable:
        print(f"unavailable  {broken.id}/{broken.version}: {broken.reason}")
    print(f"the HTTP service (issue 4) is not built yet; it will listen on {args.host}:{args.port}")


if __name__ == "__main__":
    main()

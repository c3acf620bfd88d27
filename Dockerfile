# Images for latentgen (docs/deployment.md has the commands):
#   docker build -t latentgen:gpu .                                   serving on onnxruntime-gpu (the default)
#   docker build --build-arg VARIANT=cpu -t latentgen:cpu .           serving on plain onnxruntime, no GPU needed
#   docker build --target train -t latentgen:train .                  training CLI with torch (CUDA)
#   docker build --target bulk -t latentgen:bulk .                    latentgen-bulk on Ray Data (the RayJob's image)
# The serving images carry no torch. BuildKit builds only the stages that the chosen target needs.

# VARIANT picks the serving runtime: gpu or cpu.
ARG VARIANT=gpu
# onnxruntime-gpu 1.31+ on PyPI is built for CUDA 13 and cuDNN 9, and its [cuda,cudnn] extra brings NVIDIA's CUDA
# and cuDNN libraries as wheels, so the GPU image needs no CUDA base image: the same slim Python base as the others,
# built anywhere PyPI is reachable. The service preloads those libraries (onnxruntime.preload_dlls) when CUDA is
# asked for. Measured: 35 s to build, 2.9 GB (docs/deployment.md); the host needs only the NVIDIA driver.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm


# ---- requirements: the third-party dependencies, read from pyproject.toml (the one list), as pip files.
# Every image installs them before it copies the code, so a code change doesn't reinstall them.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
# service-gpu.txt swaps onnxruntime for onnxruntime-gpu: both install the module `onnxruntime`, so never both.
RUN python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
base, extras = p["dependencies"], p["optional-dependencies"]; \
gpu = [d for d in extras["service"] if not d.startswith("onnxruntime")] + ["onnxruntime-gpu[cuda,cudnn]>=1.31"]; \
files = {"service": base + extras["service"], "service-gpu": base + gpu, "training": base + extras["training"], \
"bulk": base + extras["bulk"]}; \
[open(f"{name}.txt", "w").write("\n".join(deps) + "\n") for name, deps in files.items()]'


# ---- runtime-gpu: Python and the service's dependencies with onnxruntime-gpu and CUDA 13 + cuDNN 9 as wheels.
FROM ${PYTHON_IMAGE} AS runtime-gpu
RUN python -m venv /opt/venv \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=requirements /src/service-gpu.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt


# ---- runtime-cpu: Python and the service's dependencies with plain onnxruntime.
FROM ${PYTHON_IMAGE} AS runtime-cpu
RUN python -m venv /opt/venv \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH
COPY --from=requirements /src/service.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt


# ---- train: the training CLI with torch; export writes to /app/exported_models (mount a volume there).
# PyPI's torch wheels for Linux x86_64 are CUDA builds that bring their own CUDA libraries, so a slim base suffices;
# the host needs only the NVIDIA driver and container toolkit.
FROM ${PYTHON_IMAGE} AS train
RUN python -m venv /opt/venv \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=requirements /src/training.txt /tmp/requirements.txt
# PIP_FIND_LINKS and PIP_CONSTRAINT (build arguments: a local server of wheels, a constraints file) may pick another
# torch build, such as the CPU one the container tests use instead of PyPI's CUDA build of several GB.
ARG PIP_FIND_LINKS=""
ARG PIP_CONSTRAINT=""
RUN pip install --no-cache-dir -r /tmp/requirements.txt
WORKDIR /app
COPY contract/ contract/
COPY training/ training/
COPY recipes/ recipes/
# Run folders and exported packages are the only things it writes; both are meant to be volumes. The bundled
# packages come along so that a fresh models volume starts with them, whichever image mounts it first.
COPY --chown=10001:10001 exported_models/ exported_models/
RUN mkdir runs && chown app:app runs
USER 10001
# `--entrypoint torchrun` runs the same CLI data-parallel: torchrun --standalone --nproc_per_node N -m training ...
ENTRYPOINT ["python", "-m", "training"]


# ---- bulk: `latentgen-bulk` (Ray Data, onnxruntime on the CPU; no torch, no FastAPI), the image of every node of
# the RayJob in deploy/k8s/bulk/: the head runs the command, the workers run the encoder actors. KubeRay starts Ray in
# it with `ray start`, which ray[data] installs.
FROM ${PYTHON_IMAGE} AS bulk
RUN python -m venv /opt/venv \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=requirements /src/bulk.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
WORKDIR /app
COPY contract/ contract/
COPY latentgen_bulk/ latentgen_bulk/
COPY exported_models/ exported_models/
USER 10001
ENTRYPOINT ["python", "-m", "latentgen_bulk"]
CMD ["--help"]


# ---- serve: the service on the runtime that VARIANT picks. Last, so that it is the default target.
# runtime-${VARIANT} names a stage above, not an image to tag (DL3006).
# hadolint ignore=DL3006
FROM runtime-${VARIANT} AS serve
WORKDIR /app
COPY contract/ contract/
COPY service/ service/
# The bundled model packages; mount a folder over /app/exported_models (read-only) to serve others. They belong to
# the app user so that a named volume seeded from them stays writable for the training image (same uid) to export
# into; the service itself only reads them, and compose and Kubernetes mount them read-only.
COPY --chown=10001:10001 exported_models/ exported_models/
ENV MODELS_DIR=/app/exported_models \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8000 8001
# Ready = every model loaded and warmed up. Python, since slim images have no curl; the API key is sent when set,
# because only liveness is open without it. urlopen raises (exit 1) on a 503, a refused connection or the timeout.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:8000/health/ready', headers={'X-API-Key': os.environ.get('API_KEY', '')}), timeout=4)"]
# Exec form: uvicorn is PID 1 and gets SIGTERM itself, then drains in-flight requests (up to 30 s) before exiting.
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]

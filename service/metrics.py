"""Prometheus metrics, exposed at GET /metrics."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("latentgen_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "latentgen_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "latentgen_batch_size",
    "Rows per onnxruntime run",
    ["model", "graph"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INFERENCE = Histogram(
    "latentgen_inference_seconds",
    "Time per onnxruntime run",
    ["model", "graph"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
QUEUE_DEPTH = Gauge("latentgen_queue_depth", "Requests waiting for inference", ["model", "graph"])
MODEL_INFO = Gauge(
    "latentgen_model_info", "Loaded models and the execution provider in use", ["model", "version", "provider"]
)

"""A Python client for the latentgen HTTP API: httpx, numpy and Pillow only (no onnxruntime, no torch).

One method per route. Images go in as PIL images, pixel arrays in [0, 1] ((N, H, W) or (N, C, H, W);
uint8 as 0..255) or file paths; they come back as PIL images, codes and latents as numpy arrays.
Errors raise a `ServiceError` subclass carrying the service's status, code and message. 429 and 503
answers are retried after their Retry-After (capped), and so are failed connections.
"""

import email.utils
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypedDict, Unpack

import httpx
import numpy as np

from client import images as pictures
from client.images import ImageLike
from client.results import Encoding, Images, array
from contract.errors import ServiceError, UnreachableError, error_for
from contract.images import Resize

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = {429, 503}


def plain(value: Any) -> Any:
    """numpy arrays and scalars inside a request body -> JSON lists and numbers."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def endpoint(value: ImageLike | dict) -> dict:
    """An interpolation endpoint: {"codes": ...} or {"latent": ...} as given, anything else is an image."""
    if isinstance(value, dict):
        return {k: pictures.b64(v) if k == "image" else plain(v) for k, v in value.items()}
    return {"image": pictures.b64(value)}


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def given(resize: Resize) -> Resize | None:
    """The resize parameter to send: none is the service's default, left out."""
    return None if resize == "none" else resize


class Answer(TypedDict, total=False):
    """Options of every method that answers with images."""

    version: int | None  # the package version; the newest when None
    exact: bool  # pixels as the service's float arrays (format=array) instead of read back from its PNGs


class Upload(Answer, total=False):
    """... and of those that also take images."""

    resize: Resize  # native: a size-free model's any size (padded to its stride); stretch, crop, pad: converted


class Client:
    """`Client("http://127.0.0.1:8000").sample("mnist-vqvae", n=16, seed=0).grid()`"""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30,
        retries: int = 3,
        max_wait: float = 30,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        headers = {"x-api-key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self.retries, self.max_wait, self.sleep = retries, max_wait, sleep

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ---- transport: retries and errors

    def request(self, method: str, path: str, ok: Sequence[int] = (200,), **kwargs: Any) -> httpx.Response:
        """One call, retried on 429/503 (after Retry-After, at most max_wait) and on failed connections."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            backoff = min(0.5 * 2**attempt, self.max_wait)
            try:
                response = self.http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as error:
                if last:
                    raise UnreachableError(f"{self.http.base_url}: {error}") from error
                self.sleep(backoff)
                continue
            except httpx.TimeoutException as error:  # the server may still be working on it: no retry
                raise UnreachableError(f"no answer within the timeout: {error}", code="timeout") from error
            if response.status_code in ok:
                return response
            error = self.error(response)
            if last or response.status_code not in RETRY_STATUSES or error.code == "model_unavailable":
                raise error
            wait = retry_after(response)
            self.sleep(min(backoff if wait is None else wait, self.max_wait))
        raise AssertionError("unreachable")

    @staticmethod
    def error(response: httpx.Response) -> ServiceError:
        request_id = response.headers.get("x-request-id") or ""
        try:
            detail = response.json()["error"]
            code, message = (detail["code"], detail["message"]) if isinstance(detail, dict) else (None, str(detail))
        except (ValueError, KeyError, TypeError):
            code, message = None, response.text[:200] or response.reason_phrase
        return error_for(response.status_code, code, message, request_id)

    def post(self, model: str, operation: str, body: dict, version: int | None, **params: Any) -> httpx.Response:
        params = {k: v for k, v in {"version": version, **params}.items() if v is not None}
        return self.request("POST", f"/v1/models/{model}/{operation}", json=plain(body), params=params)

    def images(
        self,
        model: str,
        operation: str,
        body: dict,
        *,
        version: int | None = None,
        exact: bool = False,
        resize: Resize = "none",
        **params: Any,
    ) -> Images:
        """A route that answers with images (Answer and Upload say what the options do)."""
        format_ = "array" if exact else None
        answer = self.post(model, operation, body, version, format=format_, resize=given(resize), **params).json()
        if exact:
            pixels = array(answer.pop("arrays"), np.float32)
            images = [pictures.to_pil(p) for p in pixels]
        else:
            images = [pictures.from_b64(text) for text in answer.pop("images")]
            pixels = pictures.pixels(images)
        return Images(
            model=answer.pop("model"),
            version=answer.pop("version"),
            provider=answer.pop("provider"),
            images=images,
            pixels=pixels,
            codes=array(answer.pop("codes", None), np.int64),
            latents=array(answer.pop("latents", None), np.float32),
            seed=answer.pop("seed", None),
            extra=answer,
        )

    # ---- routes

    def ready(self) -> bool:
        """True once every model is loaded and warmed up (GET /health/ready)."""
        return self.request("GET", "/health/ready", ok=(200, 503)).status_code == 200

    def models(self) -> list[dict]:
        """Every model being served (newest version): id, kind, versions, provider and manifest."""
        return self.request("GET", "/v1/models").json()["models"]

    def model(self, model: str, version: int | None = None) -> dict:
        params = {"version": version} if version is not None else {}
        return self.request("GET", f"/v1/models/{model}", params=params).json()

    def encode(
        self,
        model: str,
        images: ImageLike | Sequence[ImageLike],
        include: Literal["z_e", "sample"] | None = None,
        seed: int | None = None,
        version: int | None = None,
        resize: Resize = "none",
    ) -> Encoding:
        """Images -> VQ-VAE codes (N, h, w) (+ z_e), or a VAE's mean and logvar (N, Z) (+ z with include="sample").
        A size-free model takes images at their own size (sides multiples of its stride; `resize="native"` pads
        others), and gives grids of several shapes as a list; `resize` (stretch, crop, pad) converts images to the
        training size."""
        payload = pictures.images_payload(images)
        answer = self.post(model, "encode", payload, version, include=include, seed=seed, resize=given(resize))
        answer = answer.json()
        return Encoding(
            model=answer["model"],
            version=answer["version"],
            provider=answer["provider"],
            codes=array(answer.get("codes"), np.int64),
            z_e=array(answer.get("z_e"), np.float32),
            mean=array(answer.get("mean"), np.float32),
            logvar=array(answer.get("logvar"), np.float32),
            z=array(answer.get("z"), np.float32),
            seed=answer.get("seed"),
            resize=answer.get("resize"),
        )

    def decode(
        self,
        model: str,
        codes: Any = None,
        latents: Any = None,
        labels: Sequence[int] | None = None,
        **options: Unpack[Answer],
    ) -> Images:
        """Code grids (N, h, w) (any h, w for a size-free model; one shape per call) or latents (N, Z) / (N, D, h, w)
        -> images; `labels` for a class-conditional VAE."""
        if codes is not None and np.ndim(codes) == 2:
            codes = [codes]  # one grid
        body = {"codes": codes, "latents": latents, "labels": labels}
        return self.images(model, "decode", body, **options)

    def sample(
        self,
        model: str,
        n: int = 1,
        seed: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        labels: Sequence[int] | None = None,
        codes: Any = None,
        mask: Any = None,
        guidance: float | None = None,
        **options: Unpack[Answer],
    ) -> Images:
        """Samples from the prior; `codes` + `mask` (true = resample) complete a partial code grid. `guidance`: the
        classifier-free guidance of labelled samples; `guidance` and `temperature` None: the package's defaults."""
        body = {"n": n, "seed": seed, "temperature": temperature, "top_k": top_k, "labels": labels}
        body |= {"codes": codes, "mask": mask, "guidance": guidance}
        return self.images(model, "sample", body, **options)

    def interpolate(
        self,
        model: str,
        start: ImageLike | dict,
        end: ImageLike | dict,
        steps: int = 8,
        method: Literal["linear", "slerp"] = "linear",
        quantize: bool | None = None,
        labels: Sequence[int] | None = None,
        **options: Unpack[Upload],
    ) -> Images:
        """Decoded steps between two endpoints: images, or {"codes": grid} / {"latent": z} dicts."""
        body = {"start": endpoint(start), "end": endpoint(end), "steps": steps, "method": method}
        body |= {"quantize": quantize, "labels": labels}
        return self.images(model, "interpolate", body, **options)

    def reconstruct(
        self,
        model: str,
        images: ImageLike | Sequence[ImageLike],
        labels: Sequence[int] | None = None,
        **options: Unpack[Upload],
    ) -> Images:
        """Encode then decode: the reconstructions, with the codes (VQ-VAE) or means (VAE) they went through."""
        return self.images(model, "reconstruct", pictures.images_payload(images), labels=labels, **options)

    def traverse(
        self,
        model: str,
        dimension: int,
        latent: Any = None,
        image: ImageLike | None = None,
        low: float = -3.0,
        high: float = 3.0,
        steps: int = 9,
        labels: Sequence[int] | None = None,
        **options: Unpack[Upload],
    ) -> Images:
        """VAE: one latent dimension swept from low to high around z (or an image's posterior mean)."""
        body = {"dimension": dimension, "latent": latent, "low": low, "high": high, "steps": steps, "labels": labels}
        body["image"] = None if image is None else pictures.b64(image)
        return self.images(model, "traverse", body, **options)

    def inpaint(
        self,
        model: str,
        image: ImageLike,
        mask: Any,
        iterations: int = 50,
        seed: int | None = None,
        labels: Sequence[int] | None = None,
        **options: Unpack[Upload],
    ) -> Images:
        """VAE: fill the pixels where mask (H, W) is true, keeping the others."""
        body = {"image": pictures.b64(image), "mask": np.asarray(mask, dtype=bool), "iterations": iterations}
        body |= {"seed": seed, "labels": labels}
        return self.images(model, "inpaint", body, **options)

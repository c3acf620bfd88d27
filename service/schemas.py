"""Request and response bodies of the HTTP API: one name for one thing on every route (docs/http-api.md)."""

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator
from typing_extensions import TypeAliasType

from contract.images import Resize
from service.inference import LATENT_BOUND

# Integers that index something (codes, labels) are bounded in the schema, so that no number a client sends
# overflows an int64 array; the model's own bounds ([0, K), [0, classes)) are checked by the inference layer.
Index = Annotated[int, Field(ge=-(2**31), lt=2**31)]
Grid = list[list[Index]]  # (h, w) code grid
Mask = list[list[bool]]
Coordinate = Annotated[float, Field(ge=-LATENT_BOUND, le=LATENT_BOUND)]
ImageFormat = Literal["png", "array"]
FORMAT_HELP = "png: base64 PNGs; array: raw pixels"
VERSION_HELP = "newest when omitted"


class Body(BaseModel):
    """A JSON request body. Strict: a number or a boolean sent as a string ("3", "yes") is refused, as is 3.5
    for an integer, rather than coerced; an integer is accepted where a number is expected."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ImagesIn(Body):
    """Images as base64-encoded PNG/JPEG files, or as raw pixel arrays in [0, 1]."""

    images: list[str] | None = Field(None, description="base64 PNG or JPEG files", min_length=1)
    arrays: list[list[list[float]]] | list[list[list[list[float]]]] | None = Field(
        None, description="pixels in [0, 1], shaped (N, H, W) or (N, C, H, W)", min_length=1
    )

    @model_validator(mode="after")
    def _one_source(self) -> "ImagesIn":
        if (self.images is None) == (self.arrays is None):
            raise ValueError("give exactly one of images (base64 files) or arrays (pixel values)")
        return self


Latents = list[list[float]] | list[list[list[list[float]]]]  # VAE (N, Z) or VQ-VAE (N, D, h, w)
Latent = list[float] | list[list[list[float]]]  # one of them
Labels = list[Index] | None


class ModelQuery(BaseModel):
    """Query parameters of every model route, validated with one model (routes/payloads.py, parse_query)."""

    version: int | None = Field(None, ge=1, description=VERSION_HELP)


RESIZE_HELP = "images of another size or colour: none (refused), stretch, crop (centre) or pad (letterbox)"


class EncodeQuery(ModelQuery):
    resize: Resize = Field("none", description=RESIZE_HELP)
    include: Literal["z_e", "sample"] | None = Field(
        None, description="z_e: VQ-VAE encoder output; sample: a VAE posterior draw z"
    )
    seed: int | None = Field(None, ge=0, lt=2**62, description="include=sample: image i uses seed + i")


class ImagesQuery(ModelQuery):
    """Routes that answer with images."""

    image_format: ImageFormat = Field("png", alias="format", description=FORMAT_HELP)


class ImagesInQuery(ImagesQuery):
    """Routes that take images and answer with images."""

    resize: Resize = Field("none", description=RESIZE_HELP)


class ReconstructQuery(ImagesInQuery):
    labels: list[int] | None = Field(None, description="class-conditional VAE: the class of each image")


class DecodeIn(Body):
    codes: list[Grid] | None = Field(None, description="VQ-VAE: (N, h, w) code grids", min_length=1)
    latents: Latents | None = Field(None, description="VAE: (N, Z); VQ-VAE: (N, D, h, w) continuous z_q", min_length=1)
    labels: Labels = Field(None, description="class-conditional VAE: one label, or one per latent")

    @model_validator(mode="after")
    def _one_source(self) -> "DecodeIn":
        if (self.codes is None) == (self.latents is None):
            raise ValueError("give exactly one of codes or latents")
        return self


class SampleIn(Body):
    n: int = Field(1, ge=1, description="number of samples")
    seed: int | None = Field(None, ge=0, lt=2**62, description="sample i uses seed + i; random when omitted")
    temperature: float | None = Field(
        None,
        gt=0,
        le=100,
        description="default the package's (manifest prior.temperature, or prior.unlabelled_temperature for samples "
        "without a label); 1 for a VAE",
    )
    top_k: int | None = Field(None, ge=1, lt=2**31, description="sample among the k most likely codes only (<= K)")
    labels: Labels = Field(None, description="class labels for a class-conditional prior: one, or one per sample")
    guidance: float | None = Field(
        None,
        ge=0,
        le=100,
        description="classifier-free guidance w of labelled samples, on a prior whose labels are optional: "
        "(1 + w) x the labelled logits - w x the unlabelled; default the package's (manifest prior.guidance, or "
        "prior.unlabelled_guidance for classes drawn for samples without a label)",
    )
    codes: Grid | list[Grid] | None = Field(None, description="completion: a partial code grid (or one per sample)")
    mask: Mask | list[Mask] | None = Field(None, description="completion: true where codes are to be sampled")


class Endpoint(Body):
    image: str | None = Field(None, description="base64 PNG or JPEG")
    codes: Grid | None = Field(None, description="VQ-VAE code grid (h, w)")
    latent: Latent | None = Field(None, description="VAE z (Z,) or VQ-VAE z (D, h, w)")


class InterpolateIn(Body):
    start: Endpoint
    end: Endpoint
    steps: int = Field(8, ge=2)
    method: Literal["linear", "slerp"] = "linear"
    quantize: bool | None = Field(None, description="VQ-VAE: snap each step to its nearest codes (default true)")
    labels: Labels = Field(None, description="class-conditional VAE: the class to draw every step as")


class TraverseIn(Body):
    """One latent dimension swept over [low, high], the others held (Higgins et al. 2017)."""

    image: str | None = Field(None, description="base64 PNG or JPEG; its posterior mean is the starting z")
    latent: list[float] | None = Field(None, description="the starting z (Z,)")
    dimension: int = Field(ge=0, lt=2**31)
    low: Coordinate = -3.0
    high: Coordinate = 3.0
    steps: int = Field(9, ge=2)
    labels: Labels = None


class InpaintIn(Body):
    """Fill the masked pixels of an image from the model (Rezende et al. 2014)."""

    image: str = Field(description="base64 PNG or JPEG")
    mask: list[list[bool]] = Field(description="(H, W), true where pixels are missing")
    iterations: int = Field(50, ge=1)
    seed: int | None = Field(None, ge=0, lt=2**62)
    labels: Labels = None


class ModelRef(BaseModel):
    model: str
    version: int
    provider: str


class EncodeOut(ModelRef):
    codes: list[Grid] | None = Field(None, description="VQ-VAE")
    z_e: list | None = Field(None, description="VQ-VAE, with include=z_e")
    mean: list[list[float]] | None = Field(None, description="VAE posterior mean")
    logvar: list[list[float]] | None = Field(None, description="VAE posterior log-variance")
    z: list[list[float]] | None = Field(None, description="VAE posterior sample, with include=sample")
    resize: dict | None = Field(None, description="with ?resize=: the mode, the model's shape, each input's shape")


class ImagesOut(ModelRef):
    images: list[str] | None = Field(None, description="base64 PNG, unless format=array")
    arrays: list | None = Field(None, description="pixels in [0, 1], (N, C, H, W), with format=array")
    codes: list[Grid] | None = None
    latents: list | None = None
    seed: int | None = None
    guidance: float | None = Field(None, description="sample: the classifier-free guidance the labelled samples had")
    temperature: float | None = Field(None, description="sample: the temperature the samples were drawn at")
    labels: list[int] | None = Field(
        None, description="sample without labels, prior.unlabelled any_class: the classes drawn"
    )
    resize: dict | None = Field(None, description="with ?resize=: the mode, the model's shape, each input's shape")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


# A tensor's JSON data, flat or nested: numbers only. A boolean or a string is refused, not read as 1 or parsed.
TensorData = TypeAliasType("TensorData", list[Union[StrictInt, StrictFloat, "TensorData"]])  # noqa: UP007


class InferTensor(BaseModel):
    """An Open Inference Protocol (KServe v2) tensor: data inline (JSON) or in the binary tail."""

    name: str
    shape: list[Annotated[int, Field(strict=True, ge=0, lt=2**31)]]
    datatype: str
    parameters: dict[str, int | float | str | bool] = {}
    data: TensorData | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, int | float | str | bool] = {}


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, int | float | str | bool] = {}
    inputs: list[InferTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None

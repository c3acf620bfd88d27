"""One copy of each tensor that several graphs of a package hold.

The prior's row and position graphs (the Fast PixelCNN steps) are made of the full prior's weights: exported
alone, each graph carries its own copy, and the package weighed twice its prior. Tensors that more than one
graph holds move to one file beside them, as ONNX external data, which onnxruntime reads relative to the graph's
own file; the manifest lists that file and its sha256 like every other.
"""

import hashlib
from pathlib import Path

import onnx
from onnx import numpy_helper

SHARED_FILE = "shared_weights.bin"


def share_tensors(folder: Path, graph_files: list[str]) -> bool:
    """Rewrites the graphs in `folder` so that each tensor two or more of them hold is stored once, in
    SHARED_FILE; returns whether there was any."""
    models = {name: onnx.load(folder / name) for name in graph_files}
    keys = {name: [digest(tensor) for tensor in model.graph.initializer] for name, model in models.items()}
    holders: dict[bytes, set[str]] = {}
    for name, model_keys in keys.items():
        for key in model_keys:
            holders.setdefault(key, set()).add(name)
    shared = {key for key, names in holders.items() if len(names) > 1}
    if not shared:
        return False
    placed: dict[bytes, tuple[int, int]] = {}  # digest -> (offset, length) in SHARED_FILE
    with open(folder / SHARED_FILE, "wb") as out:
        for name, model in models.items():
            if shared.isdisjoint(keys[name]):
                continue  # holds nothing shared: the graph as exported stays
            for tensor, key in zip(model.graph.initializer, keys[name], strict=True):
                if key not in shared:
                    continue
                if key not in placed:
                    data = raw_bytes(tensor)
                    placed[key] = (out.tell(), len(data))
                    out.write(data)
                point_to_shared_file(tensor, *placed[key])
            onnx.save(model, folder / name)
    return True


def raw_bytes(tensor: onnx.TensorProto) -> bytes:
    return tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()


def digest(tensor: onnx.TensorProto) -> bytes:
    """Equal for tensors of the same type, shape and values."""
    shape = ",".join(map(str, tensor.dims))
    return hashlib.sha256(f"{tensor.data_type}:{shape}:".encode() + raw_bytes(tensor)).digest()


def point_to_shared_file(tensor: onnx.TensorProto, offset: int, length: int) -> None:
    external = onnx.TensorProto(
        name=tensor.name, data_type=tensor.data_type, dims=tensor.dims, data_location=onnx.TensorProto.EXTERNAL
    )
    for key, value in (("location", SHARED_FILE), ("offset", str(offset)), ("length", str(length))):
        external.external_data.add(key=key, value=value)
    tensor.CopyFrom(external)

"""Tensors that several graphs of a package hold are stored once (training/export/shared_weights.py)."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from contract.manifest import read_manifest
from tests.conftest import TinyPipeline
from training.export.shared_weights import SHARED_FILE, share_tensors


def matmul_graph(path: Path, weights: dict[str, np.ndarray]) -> None:
    """y = x @ w1 @ w2 ..., one initializer per weight."""
    nodes, current = [], "x"
    for i, name in enumerate(weights):
        output = "y" if i == len(weights) - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [current, name], [output]))
        current = output
    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_shared_tensors_are_stored_once_and_the_graphs_compute_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shared, own_a, own_b = (rng.standard_normal((16, 16)).astype(np.float32) for _ in range(3))
    matmul_graph(tmp_path / "a.onnx", {"shared": shared, "own": own_a})
    matmul_graph(tmp_path / "b.onnx", {"w": shared.copy(), "mine": own_b})  # same values under another name
    matmul_graph(tmp_path / "c.onnx", {"alone": own_a.T.copy()})
    x = rng.standard_normal((3, 16)).astype(np.float32)
    before = {name: run(tmp_path / name, x) for name in ("a.onnx", "b.onnx", "c.onnx")}

    assert share_tensors(tmp_path, ["a.onnx", "b.onnx", "c.onnx"])
    assert (tmp_path / SHARED_FILE).stat().st_size == shared.nbytes  # one copy of the one shared tensor
    for name, expected in before.items():
        np.testing.assert_array_equal(run(tmp_path / name, x), expected)
    graph_a = onnx.load(tmp_path / "a.onnx", load_external_data=False).graph
    stored = {t.name: t.data_location for t in graph_a.initializer}
    assert stored == {"shared": TensorProto.EXTERNAL, "own": TensorProto.DEFAULT}


def test_graphs_that_share_nothing_are_left_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    matmul_graph(tmp_path / "a.onnx", {"w": rng.standard_normal((16, 16)).astype(np.float32)})
    matmul_graph(tmp_path / "b.onnx", {"w": rng.standard_normal((16, 16)).astype(np.float32)})
    written = (tmp_path / "a.onnx").read_bytes()
    assert not share_tensors(tmp_path, ["a.onnx", "b.onnx"])
    assert not (tmp_path / SHARED_FILE).exists() and (tmp_path / "a.onnx").read_bytes() == written


def test_the_prior_step_graphs_hold_no_weights_of_their_own(tiny_pipeline: TinyPipeline) -> None:
    """The Fast PixelCNN step graphs are made of the prior's weights: each is stored once, in the shared file."""
    package = tiny_pipeline.package
    assert SHARED_FILE in read_manifest(package).files
    for graph in ("prior_row.onnx", "prior_position.onnx"):
        large = [
            t
            for t in onnx.load(package / graph, load_external_data=False).graph.initializer
            if t.dims and np.prod(t.dims) > 64
        ]
        assert large and all(t.data_location == TensorProto.EXTERNAL for t in large), graph

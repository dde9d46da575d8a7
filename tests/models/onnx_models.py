"""Small, real ONNX models for the tests (made with onnx.helper, checked by onnx)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_model(features: int = 8, *, seed: int = 0, opset: int = 17) -> bytes:
    """Y = X @ W with a float32 initializer of `features` x 1 (size grows with features)."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.random((features, 1), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 1])],
        [weights],
    )
    model = helper.make_model(
        graph, producer_name="mlplane-tests", opset_imports=[helper.make_opsetid("", opset)]
    )
    model.producer_version = "1.0"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def broken_model() -> bytes:
    """Parses as ModelProto but fails onnx.checker (an input nobody produces)."""
    model = onnx.load_from_string(linear_model())
    model.graph.node[0].input[0] = "nobody_makes_this"
    return model.SerializeToString()


def old_opset_model() -> bytes:
    model = onnx.load_from_string(linear_model())
    model.opset_import[0].version = 3
    return model.SerializeToString()

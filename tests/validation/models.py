"""Small ONNX models for the runtime check (made with onnx.helper, checked by onnx.checker)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _finish(graph: onnx.GraphProto, *, extra_opsets: dict[str, int] | None = None) -> bytes:
    opsets = [helper.make_opsetid("", OPSET)]
    opsets += [helper.make_opsetid(domain, v) for domain, v in (extra_opsets or {}).items()]
    model = helper.make_model(graph, producer_name="mlplane-tests", opset_imports=opsets)
    model.producer_version = "1.0"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def classifier_model(features: int = 4, *, seed: int = 0) -> bytes:
    """probability = sigmoid(X @ W + b) (float, [batch, 1]); label = probability > 0.5 (int64)."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.standard_normal((features, 1)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.array([0.1], dtype=np.float32), "B")
    half = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["scores"]),
            helper.make_node("Add", ["scores", "B"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["probability"]),
            helper.make_node("Greater", ["probability", "half"], ["positive"]),
            helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64),
        ],
        "classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", features])],
        [
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch", 1]),
        ],
        [weights, bias, half],
    )
    return _finish(graph)


def unnamed_batch_model(features: int = 3) -> bytes:
    """Y = X + 1 with X of shape [None, features]: the unnamed batch skl2onnx writes."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "one"], ["Y"])],
        "unnamed_batch",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, features])],
        [one],
    )
    return _finish(graph)


def mixed_inputs_model() -> bytes:
    """Inputs of several element types (double with an unnamed dim, int64, bool, string)."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["D"], ["d_out"]),
            helper.make_node("Identity", ["I"], ["i_out"]),
            helper.make_node("Not", ["F"], ["f_out"]),
            helper.make_node("Identity", ["S"], ["s_out"]),
        ],
        "mixed",
        [
            helper.make_tensor_value_info("D", TensorProto.DOUBLE, ["n", None, 3]),
            helper.make_tensor_value_info("I", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("F", TensorProto.BOOL, ["n"]),
            helper.make_tensor_value_info("S", TensorProto.STRING, ["n"]),
        ],
        [
            helper.make_tensor_value_info("d_out", TensorProto.DOUBLE, ["n", None, 3]),
            helper.make_tensor_value_info("i_out", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("f_out", TensorProto.BOOL, ["n"]),
            helper.make_tensor_value_info("s_out", TensorProto.STRING, ["n"]),
        ],
    )
    return _finish(graph)


def non_finite_model() -> bytes:
    """Y = X / 0: infinities (and NaN where X is 0)."""
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    graph = helper.make_graph(
        [helper.make_node("Div", ["X", "zero"], ["Y"])],
        "non_finite",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 2])],
        [zero],
    )
    return _finish(graph)


def custom_op_model() -> bytes:
    """Valid ONNX (onnx.checker accepts ops of unknown domains) that ONNX Runtime cannot load."""
    graph = helper.make_graph(
        [helper.make_node("Mystery", ["X"], ["Y"], domain="com.example.nowhere")],
        "custom_op",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 2])],
    )
    return _finish(graph, extra_opsets={"com.example.nowhere": 1})


def memory_hog_model(columns: int = 1 << 28) -> bytes:
    """Y = Expand(X, [batch, columns]): 8 x 2^28 floats = 8 GiB at inference, from 1 KiB."""
    shape = numpy_helper.from_array(np.array([1, columns], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Expand", ["X", "shape"], ["Y"])],
        "memory_hog",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", columns])],
        [shape],
    )
    return _finish(graph)


def endless_loop_model(trip_count: int = 1 << 62) -> bytes:
    """Y = X + 1, `trip_count` times over, in a Loop: runs for ever in practice."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, ["batch", 2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, ["batch", 2]),
        ],
        [one],
    )
    trips = numpy_helper.from_array(np.array(trip_count, dtype=np.int64), "trips")
    keep_going = numpy_helper.from_array(np.array(True), "keep_going")
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "keep_going", "X"], ["Y"], body=body)],
        "endless_loop",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 2])],
        [trips, keep_going],
    )
    return _finish(graph)


def wrong_rank_model() -> bytes:
    """Loads, but fails at inference: Reshape to a shape that cannot hold the input's elements."""
    shape = numpy_helper.from_array(np.array([3, 5], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["X", "shape"], ["Y"])],
        "wrong_reshape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, 5])],
        [shape],
    )
    return _finish(graph)


def sequence_input_model() -> bytes:
    """An input that is a sequence of tensors: the check cannot synthesise it."""
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["S"], ["Y"])],
        "sequence_input",
        [
            helper.make_tensor_sequence_value_info("S", TensorProto.FLOAT, ["n"]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.INT64, [])],
    )
    return _finish(graph)

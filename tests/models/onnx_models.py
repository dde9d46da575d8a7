"""Small, real ONNX models for the tests (made with onnx.helper, checked by onnx)."""

from __future__ import annotations

from typing import Any

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


# --- hostile models (issue #14): external data and tensors that lie about their size ---
EXTERNAL_PLACES = (
    "initializer",
    "location_only",
    "node_attribute",
    "node_attribute_list",
    "function_node_attribute",
    "function_default_attribute",
    "subgraph",
    "nested_subgraph",
    "sparse_initializer_values",
    "sparse_initializer_indices",
    "sparse_attribute",
    "training_info",
)


def _tensor(name: str, dims: list[int], data: bytes, *, external: bool = False) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    if external:
        # Data "somewhere else": a file beside the model, or anywhere the path leads.
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "../../../../etc/passwd"), ("offset", "0")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    else:
        tensor.raw_data = data
    return tensor


def _floats(count: int) -> bytes:
    return np.arange(count, dtype=np.float32).tobytes()


def _model(
    nodes: list[onnx.NodeProto],
    *,
    initializers: list[TensorProto] | None = None,
    sparse: list[onnx.SparseTensorProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
    inputs: list[onnx.ValueInfoProto] | None = None,
    output_shape: list[int] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "hostile",
        inputs or [],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, output_shape)],
        initializers or [],
        sparse_initializer=sparse or [],
    )
    opsets = [helper.make_opsetid("", 17)]
    if functions:
        opsets.append(helper.make_opsetid("mlplane.test", 1))
    return helper.make_model(
        graph, producer_name="mlplane-tests", opset_imports=opsets, functions=functions or []
    )


def _constant_function(
    value: onnx.AttributeProto | None, tensor: TensorProto | None
) -> onnx.FunctionProto:
    """mlplane.test.F(x) = x + c, with c a Constant node's tensor or a default attribute."""
    nodes = [
        helper.make_node("Constant", [], ["c"], value=tensor)
        if tensor is not None
        else helper.make_node("Constant", [], ["c"], value_float=1.0),
        helper.make_node("Add", ["x", "c"], ["y"]),
    ]
    return helper.make_function(
        "mlplane.test",
        "F",
        ["x"],
        ["y"],
        nodes,
        [helper.make_opsetid("", 17)],
        attribute_protos=[value] if value is not None else [],
    )


def _sparse(values: TensorProto, indices: TensorProto, dims: list[int]) -> onnx.SparseTensorProto:
    return helper.make_sparse_tensor(values, indices, dims)


def _indices(count: int, *, external: bool = False) -> TensorProto:
    tensor = TensorProto(name="i", data_type=TensorProto.INT64, dims=[count])
    if external:
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "indices.bin"
    else:
        tensor.raw_data = np.arange(count, dtype=np.int64).tobytes()
    return tensor


def tensor_in(place: str, dims: list[int], data: bytes, *, external: bool = False) -> bytes:
    """A model whose one tensor (`dims` floats, holding `data` or, with `external`, an
    external-data reference) sits at `place` (one of EXTERNAL_PLACES)."""
    count = int(np.prod(dims)) if dims else 1
    if place.startswith("sparse"):
        dims = [count]  # a sparse tensor's values are one-dimensional
    weights = _tensor("W", dims, data, external=external)

    def model_of(nodes: list[onnx.NodeProto], **kwargs: Any) -> onnx.ModelProto:
        return _model(nodes, output_shape=dims, **kwargs)

    x = [helper.make_tensor_value_info("X", TensorProto.FLOAT, dims)]
    if place == "initializer":
        model = model_of([helper.make_node("Identity", ["W"], ["Y"])], initializers=[weights])
    elif place == "location_only":
        # data_location says EXTERNAL with no external_data entries at all.
        weights.ClearField("raw_data")
        weights.data_location = TensorProto.EXTERNAL
        del weights.external_data[:]
        model = model_of([helper.make_node("Identity", ["W"], ["Y"])], initializers=[weights])
    elif place == "node_attribute":
        model = model_of([helper.make_node("Constant", [], ["Y"], value=weights)])
    elif place == "node_attribute_list":
        node = helper.make_node("Identity", ["X"], ["Y"])
        node.attribute.append(helper.make_attribute("unused_tensors", [weights]))
        model = model_of([node], inputs=x)
        model.graph.node[0].domain = "mlplane.test"
        model.opset_import.append(helper.make_opsetid("mlplane.test", 1))
    elif place == "function_node_attribute":
        model = model_of(
            [helper.make_node("F", ["X"], ["Y"], domain="mlplane.test")],
            functions=[_constant_function(None, weights)],
            inputs=x,
        )
    elif place == "function_default_attribute":
        default = helper.make_attribute("c", weights)
        model = model_of(
            [helper.make_node("F", ["X"], ["Y"], domain="mlplane.test")],
            functions=[_constant_function(default, None)],
            inputs=x,
        )
    elif place in ("subgraph", "nested_subgraph"):
        branch = helper.make_graph(
            [helper.make_node("Constant", [], ["b"], value=weights)],
            "branch",
            [],
            [helper.make_tensor_value_info("b", TensorProto.FLOAT, dims)],
        )
        honest = _floats(count) if count < 1 << 24 else b""  # (refused after W anyway)
        other = helper.make_graph(
            [helper.make_node("Constant", [], ["o"], value=_tensor("O", dims, honest))],
            "other",
            [],
            [helper.make_tensor_value_info("o", TensorProto.FLOAT, dims)],
        )
        if place == "nested_subgraph":
            branch = helper.make_graph(
                # else_branch first: attributes are stored (and walked) by name.
                [helper.make_node("If", ["C"], ["b"], then_branch=other, else_branch=branch)],
                "outer_branch",
                [],
                [helper.make_tensor_value_info("b", TensorProto.FLOAT, dims)],
            )
        model = model_of(
            [helper.make_node("If", ["C"], ["Y"], then_branch=other, else_branch=branch)],
            inputs=[helper.make_tensor_value_info("C", TensorProto.BOOL, [])],
        )
    elif place in ("sparse_initializer_values", "sparse_initializer_indices"):
        values = weights if place.endswith("values") else _tensor("W", dims, _floats(count))
        values.name = "Y"  # the graph's output is the sparse initializer itself
        index = _indices(min(count, 4096), external=external and place.endswith("indices"))
        model = model_of([], sparse=[_sparse(values, index, [count])])
        del model.graph.output[:]
        model.graph.output.append(
            helper.make_sparse_tensor_value_info("Y", TensorProto.FLOAT, [count])
        )
    elif place == "sparse_attribute":
        weights.name = ""
        model = model_of(
            [
                helper.make_node(
                    "Constant",
                    [],
                    ["Y"],
                    sparse_value=_sparse(weights, _indices(min(count, 4096)), [count]),
                )
            ]
        )
    elif place == "training_info":
        model = model_of([helper.make_node("Identity", ["X"], ["Y"])], inputs=x)
        training = model.training_info.add()
        training.algorithm.CopyFrom(
            helper.make_graph(
                [helper.make_node("Identity", ["W"], ["Z"])],
                "train",
                [],
                [helper.make_tensor_value_info("Z", TensorProto.FLOAT, dims)],
                [weights],
            )
        )
    else:
        raise ValueError(place)
    return model.SerializeToString()

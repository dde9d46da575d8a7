"""Models are what they claim (issue #14): external data anywhere in a model is refused
(initializers, node and function attributes, subgraphs, sparse tensors, training graphs),
and every tensor's data is checked against its element type and dimensions whatever its
size, without loading the weights: the validator streams the spooled file."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import asyncpg
import grpc
import httpx
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc
from onnx import TensorProto, helper

from services.common.errors import ServiceError
from services.models.onnx_validation import validate_onnx_file
from tests.admin_sql import admin_rows
from tests.models.onnx_models import EXTERNAL_PLACES, _floats, tensor_in
from tests.stack_runner import RunningStack

HUGE = [2**40, 2**20]  # 2**60 floats claimed
# Where a tensor can lie about its size (the indices of a sparse tensor are checked the
# same way, as any tensor; their builder keeps them honest).
SIZED_PLACES = tuple(
    p for p in EXTERNAL_PLACES if p not in ("location_only", "sparse_initializer_indices")
)


def _refusal(tmp_path: Path, data: bytes) -> ServiceError:
    path = tmp_path / f"{uuid.uuid4().hex}.part"
    path.write_bytes(data)
    with pytest.raises(ServiceError) as caught:
        validate_onnx_file(path)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert not list(tmp_path.glob("*.skeleton.onnx"))
    return caught.value


@pytest.mark.parametrize("place", EXTERNAL_PLACES)
def test_external_data_anywhere_is_refused(tmp_path: Path, place: str) -> None:
    error = _refusal(tmp_path, tensor_in(place, [4, 8], b"", external=True))
    assert error.reason == "ONNX_EXTERNAL_DATA", error.message
    assert "self-contained" in error.message


@pytest.mark.parametrize("place", SIZED_PLACES)
@pytest.mark.parametrize("dims", [[4, 8], [64, 64]])  # inline, and over the 1 KiB threshold
def test_honest_tensors_are_accepted_everywhere(
    tmp_path: Path, place: str, dims: list[int]
) -> None:
    path = tmp_path / "ok.part"
    path.write_bytes(tensor_in(place, dims, _floats(int(np.prod(dims)))))
    signature = validate_onnx_file(path)
    assert signature.outputs[0].name == "Y"


@pytest.mark.parametrize("place", SIZED_PLACES)
@pytest.mark.parametrize(
    ("dims", "data_bytes"),
    [
        (HUGE, 2048),  # the case: claims 4 EiB, holds 2 KiB (over the threshold)
        (HUGE, 64),  # ... or a few bytes (inline)
        ([3], 8),  # 3 floats need 12 bytes
        ([2], 2048),  # 2 floats hold 8 bytes, not 2 KiB
        ([16, 16], 0),  # no data at all
    ],
)
def test_tensor_data_must_match_type_and_dims(
    tmp_path: Path, place: str, dims: list[int], data_bytes: int
) -> None:
    data = b"\x00" * data_bytes
    error = _refusal(tmp_path, tensor_in(place, dims, data))
    assert error.reason == "ONNX_TENSOR_SIZE", (error.reason, error.message)
    assert "bytes" in error.message
    assert f"{data_bytes:,} bytes" in error.message


@pytest.mark.parametrize(
    ("data_type", "dims", "data", "ok"),
    [
        (TensorProto.DOUBLE, [4], b"\0" * 32, True),
        (TensorProto.DOUBLE, [4], b"\0" * 16, False),
        (TensorProto.FLOAT16, [3], b"\0" * 6, True),
        (TensorProto.INT64, [2, 2], b"\0" * 32, True),
        (TensorProto.INT64, [2, 2], b"\0" * 16, False),
        (TensorProto.BOOL, [5], b"\0" * 5, True),
        (TensorProto.COMPLEX128, [1], b"\0" * 16, True),
        (TensorProto.UINT4, [3], b"\0" * 2, True),  # 4-bit values, two a byte
        (TensorProto.UINT4, [3], b"\0" * 3, False),
    ],
)
def test_element_types_have_their_sizes(
    tmp_path: Path, data_type: int, dims: list[int], data: bytes, ok: bool
) -> None:
    tensor = TensorProto(name="W", data_type=data_type, dims=dims, raw_data=data)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["Y"])],
        "types",
        [],
        [helper.make_tensor_value_info("Y", data_type, dims)],
        [tensor],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    path = tmp_path / "typed.part"
    path.write_bytes(model.SerializeToString())
    if ok:
        validate_onnx_file(path)
    else:
        assert _refusal(tmp_path, path.read_bytes()).reason == "ONNX_TENSOR_SIZE"


def test_typed_fields_are_counted(tmp_path: Path) -> None:
    # Values in float_data / int64_data / string_data rather than raw_data.
    honest = helper.make_tensor("W", TensorProto.FLOAT, [2, 3], [1.0] * 6)
    short = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2**40, 3])
    short.float_data.extend([1.0] * 6)
    longs = TensorProto(name="W", data_type=TensorProto.INT64, dims=[2**20])
    longs.int64_data.extend([1, 300, -5])
    words = TensorProto(name="W", data_type=TensorProto.STRING, dims=[2**30])
    words.string_data.extend([b"a", b"b"])
    cases = ((honest, True), (short, False), (longs, False), (words, False))
    for tensor, ok in cases:
        graph = helper.make_graph(
            [helper.make_node("Constant", [], ["Y"], value=tensor)],
            "typed",
            [],
            [helper.make_tensor_value_info("Y", tensor.data_type, list(tensor.dims))],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        path = tmp_path / "typed.part"
        path.write_bytes(model.SerializeToString())
        if ok:
            validate_onnx_file(path)
        else:
            assert _refusal(tmp_path, path.read_bytes()).reason == "ONNX_TENSOR_SIZE"


def test_checking_sizes_does_not_load_the_weights(tmp_path: Path) -> None:
    # 48 MiB of honest weights in a subgraph: validated with a small fraction of it in memory.
    dims = [3072, 4096]
    path = tmp_path / "big.part"
    path.write_bytes(tensor_in("subgraph", dims, np.ones(dims, dtype=np.float32).tobytes()))
    tracemalloc.start()
    try:
        validate_onnx_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes while validating"


# --- through the stack: a 400 with its reason, and nothing stored ----------------------------
def _stored(stack: RunningStack, name: str) -> list[asyncpg.Record]:
    return admin_rows(stack, "SELECT model_id FROM models WHERE name = $1", name)


def _objects(stack: RunningStack) -> set[Path]:
    return {p for p in (stack.state_dir / "objects").rglob("*") if p.is_file()}


HOSTILE = {
    "function_default_attribute": (
        tensor_in("function_default_attribute", [4, 8], b"", external=True),
        "ONNX_EXTERNAL_DATA",
    ),
    "sparse_initializer_indices": (
        tensor_in("sparse_initializer_indices", [4, 8], _floats(32), external=True),
        "ONNX_EXTERNAL_DATA",
    ),
    "huge_dims_initializer": (tensor_in("initializer", HUGE, b"\0" * 2048), "ONNX_TENSOR_SIZE"),
    "huge_dims_in_function": (
        tensor_in("function_node_attribute", HUGE, b"\0" * 2048),
        "ONNX_TENSOR_SIZE",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_rest_hostile_models_are_400_and_store_nothing(
    stack: RunningStack, http: httpx.Client, case: str
) -> None:
    data, reason = HOSTILE[case]
    name, before = f"onnx-{uuid.uuid4().hex[:10]}", _objects(stack)
    token = stack.tokens.valid("data_scientist")
    response = http.post(
        "/api/v1/models",
        data={"name": name},
        files={"file": ("m.onnx", data)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["reason"] == reason
    assert _stored(stack, name) == []
    assert _objects(stack) == before


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_grpc_hostile_models_are_invalid_argument_and_store_nothing(
    stack: RunningStack, case: str
) -> None:
    data, reason = HOSTILE[case]
    name, before = f"onnx-{uuid.uuid4().hex[:10]}", _objects(stack)
    token = stack.tokens.valid("data_scientist")
    with grpc.insecure_channel(stack.gateway_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ModelRegistryStub(channel).UploadModel(
                iter(
                    [
                        pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name=name)),
                        pb.UploadModelRequest(chunk=data),
                    ]
                ),
                metadata=(("authorization", f"Bearer {token}"),),
            )
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == reason
    assert _stored(stack, name) == []
    assert _objects(stack) == before

"""What an upload that is not a usable ONNX model is told: what the file looks like, and
how to convert it, in plain words (the protobuf detail stays in the metadata)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import grpc
import onnx
import pytest
from onnx import TensorProto, helper

from services.common.errors import ServiceError
from services.models.onnx_validation import (
    MAX_SIGNATURE_TENSORS,
    validate_onnx_file,
)
from tests.models.onnx_models import linear_model


def refusal(tmp_path: Path, data: bytes) -> ServiceError:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    with pytest.raises(ServiceError) as caught:
        validate_onnx_file(path)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def _zip_bytes(tmp_path: Path) -> bytes:
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    return archive.read_bytes()


@pytest.mark.parametrize(
    ("make", "looks_like"),
    [
        (lambda _: pickle.dumps({"estimator": [1, 2, 3]}, protocol=4), "a Python pickle"),
        (lambda _: pickle.dumps({"estimator": 1}, protocol=2), "a Python pickle"),
        (_zip_bytes, "a ZIP archive (a PyTorch"),
        (lambda _: b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "an HDF5 file"),
        (lambda _: b'{"model": "not really"}', "text or JSON"),
        (lambda _: (24).to_bytes(8, "little") + b'{"w":{"dtype":"F32"}}   ', "safetensors"),
    ],
)
def test_common_formats_are_named_with_how_to_convert(
    tmp_path: Path, make: object, looks_like: str
) -> None:
    error = refusal(tmp_path, make(tmp_path))  # type: ignore[operator]
    assert error.reason == "NOT_ONNX"
    assert error.message.startswith(f"the file is not an ONNX model: it looks like {looks_like}")
    assert "skl2onnx.to_onnx" in error.message
    assert "torch.onnx.export" in error.message
    assert "field number" not in error.message  # protobuf jargon stays out of the sentence
    assert error.metadata["detail"]


def test_unrecognised_bytes_still_say_what_to_do(tmp_path: Path) -> None:
    error = refusal(tmp_path, bytes(range(7, 200)))
    assert error.message.startswith(
        "the file is not an ONNX model: it does not parse as an ONNX model; export the model"
    )


def test_a_truncated_model_is_not_onnx(tmp_path: Path) -> None:
    assert refusal(tmp_path, linear_model(64)[:-10]).reason == "NOT_ONNX"


def _wide_model(inputs: int, name_length: int = 8) -> bytes:
    names = [f"x{i:0{name_length}d}" for i in range(inputs)]
    graph = helper.make_graph(
        [helper.make_node("Sum", names, ["y"])],
        "wide",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_a_signature_too_large_to_read_back_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, _wide_model(MAX_SIGNATURE_TENSORS + 1))
    assert error.reason == "SIGNATURE_TOO_LARGE"
    assert f"at most {MAX_SIGNATURE_TENSORS} tensors" in error.message
    error = refusal(tmp_path, _wide_model(600, name_length=500))
    assert error.reason == "SIGNATURE_TOO_LARGE"


def test_a_wide_but_reasonable_model_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ok.onnx"
    path.write_bytes(_wide_model(500))
    assert len(validate_onnx_file(path).inputs) == 500
    onnx.checker.check_model(onnx.load(str(path)))

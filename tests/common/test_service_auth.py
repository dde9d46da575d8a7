"""Directly against each service's port, bypassing Envoy: the services trust no one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from mlplane.v1 import (
    model_registry_pb2,
    model_registry_pb2_grpc,
    query_service_pb2,
    query_service_pb2_grpc,
)

from tests.stack_runner import RunningStack
from tests.tokens import UNAUTHENTICATED_CASES

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def _call(
    stack: RunningStack, service: str, token: str | None, role_method: str = "read"
) -> grpc.RpcError:
    error = _try_call(stack, service, token, role_method)
    assert error is not None, "the call was expected to fail"
    return error


def _try_call(
    stack: RunningStack, service: str, token: str | None, role_method: str = "read"
) -> grpc.RpcError | None:
    md = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(stack.service_target(service)) as channel:
        try:
            if service == "query":
                query_service_pb2_grpc.QueryServiceStub(channel).ListAssets(
                    query_service_pb2.ListAssetsRequest(), metadata=md, timeout=10
                )
            elif role_method == "approve":
                model_registry_pb2_grpc.ModelRegistryStub(channel).ApproveModelVersion(
                    model_registry_pb2.ApproveModelVersionRequest(approval_id="x"),
                    metadata=md,
                    timeout=10,
                )
            else:
                model_registry_pb2_grpc.ModelRegistryStub(channel).ListModels(
                    model_registry_pb2.ListModelsRequest(), metadata=md, timeout=10
                )
        except grpc.RpcError as error:
            return error
    return None


@pytest.mark.parametrize("service", ["query", "models"])
def test_no_token(stack: RunningStack, service: str) -> None:
    assert _call(stack, service, None).code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("service", ["query", "models"])
@pytest.mark.parametrize("case", sorted([*UNAUTHENTICATED_CASES, "wrong_audience"]))
def test_bad_tokens(stack: RunningStack, service: str, case: str) -> None:
    make = UNAUTHENTICATED_CASES.get(case) or type(stack.tokens).wrong_audience
    error = _call(stack, service, make(stack.tokens))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()


@pytest.mark.parametrize("service", ["query", "models"])
def test_wrong_role(stack: RunningStack, service: str) -> None:
    error = _call(stack, service, stack.tokens.wrong_role())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_scientist_cannot_approve(stack: RunningStack) -> None:
    error = _call(stack, "models", stack.tokens.valid("data_scientist"), "approve")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_right_role_reaches_handler(stack: RunningStack) -> None:
    token = stack.tokens.valid("data_scientist", "model_approver")
    assert _try_call(stack, "query", token) is None
    assert _try_call(stack, "models", token) is None
    # An approver reaches ApproveModelVersion (and is told the id is malformed).
    error = _call(stack, "models", stack.tokens.valid("model_approver"), "approve")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("service", "name"),
    [("query", "mlplane.v1.QueryService"), ("models", "mlplane.v1.ModelRegistry")],
)
def test_health_and_reflection_with_grpcurl(stack: RunningStack, service: str, name: str) -> None:
    target = stack.service_target(service)
    listed = subprocess.run(
        [GRPCURL, "-plaintext", target, "list"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert name in listed
    assert "grpc.health.v1.Health" in listed
    for service_name in ("", name):
        health = subprocess.run(
            [
                GRPCURL,
                "-plaintext",
                "-d",
                json.dumps({"service": service_name}),
                target,
                "grpc.health.v1.Health/Check",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert json.loads(health)["status"] == "SERVING"


def test_metrics_count_errors_by_code(stack: RunningStack) -> None:
    import httpx

    _call(stack, "query", None)
    text = httpx.get(f"http://127.0.0.1:{stack.info['query_metrics_port']}/metrics").text
    series = (
        'grpc_server_handled_total{grpc_code="Unauthenticated",grpc_method="ListAssets",'
        'grpc_service="mlplane.v1.QueryService",grpc_type="unary"} '
    )
    counts = [float(line[len(series) :]) for line in text.splitlines() if line.startswith(series)]
    assert counts, series
    assert counts[0] >= 1
    assert "grpc_server_handling_seconds_bucket" in text

"""Clients through the real gateway, for the QueryService's stack tests."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from tests.stack_runner import RunningStack


@pytest.fixture(scope="module")
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def stub(stack: RunningStack) -> Iterator[pb_grpc.QueryServiceStub]:
    with grpc.insecure_channel(stack.gateway_target) as channel:
        yield pb_grpc.QueryServiceStub(channel)

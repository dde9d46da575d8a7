"""Clients through the real gateway, for the QueryService's stack tests."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import grpc
import httpx
import pytest
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from tests.conftest import private_tmp
from tests.query.stack_helpers import export_stack_env, load_bulk_history
from tests.stack_runner import RunningStack, start_stack, stop_stack


@pytest.fixture(scope="module")
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def stub(stack: RunningStack) -> Iterator[pb_grpc.QueryServiceStub]:
    with grpc.insecure_channel(stack.gateway_target) as channel:
        yield pb_grpc.QueryServiceStub(channel)


@pytest.fixture(scope="session")
def export_stack() -> Iterator[RunningStack]:
    """A stack of its own for the export limit and cancellation tests: a small query
    pool (6, of which 2 kept for interactive queries), 2 exports per user, and a bulk
    asset whose export outlasts every buffer on the way to a client that stops reading."""
    root = private_tmp("mlplane-exports-")
    running = start_stack(root / "state", **export_stack_env())
    try:
        asyncio.run(load_bulk_history(running))
        yield running
    finally:
        survivors = stop_stack(running)
        shutil.rmtree(root, ignore_errors=True)
        assert not survivors, f"processes left behind: {survivors}"

"""Clients through the real gateway, for the QueryService's stack tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from tests.conftest import starts_servers
from tests.query.stack_helpers import export_stack_env, load_bulk_history
from tests.stack_runner import RunningStack, stack_in_tmp


@pytest.fixture(scope="module")
def stub(stack: RunningStack) -> Iterator[pb_grpc.QueryServiceStub]:
    with grpc.insecure_channel(stack.gateway_target) as channel:
        yield pb_grpc.QueryServiceStub(channel)


@pytest.fixture(scope="session")
@starts_servers
def export_stack() -> Iterator[RunningStack]:
    """A stack of its own for the export limit and cancellation tests: a small query
    pool (6, of which 2 kept for interactive queries), 2 exports per user, and a bulk
    asset whose export outlasts every buffer on the way to a client that stops reading."""
    with stack_in_tmp("mlplane-exports-", **export_stack_env()) as running:
        asyncio.run(load_bulk_history(running))
        yield running

"""SDK fixtures: clients through the gateway and straight to each service, as
alice (data scientist) and bob (approver), and a window of demo history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mlplane_client import Client
from tests.admin_sql import admin_rows
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack


def unique_name(prefix: str = "sdk") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def alice_token(stack: RunningStack) -> str:
    return stack.tokens.valid("data_scientist", subject="alice")


def bob_token(stack: RunningStack) -> str:
    return stack.tokens.valid("model_approver", subject="bob")


@pytest.fixture(scope="module")
def alice(stack: RunningStack) -> Iterator[Client]:
    """A data scientist, through the gateway."""
    with Client(stack.gateway_target, token=alice_token(stack)) as client:
        yield client


@pytest.fixture(scope="module")
def bob(stack: RunningStack) -> Iterator[Client]:
    """An approver, through the gateway."""
    with Client(f"http://{stack.gateway_target}", token=bob_token(stack)) as client:
        yield client


@pytest.fixture(scope="module")
def query_direct(stack: RunningStack) -> Iterator[Client]:
    """Alice, straight to the QueryService (no Envoy)."""
    with Client(stack.service_target("query"), token=alice_token(stack)) as client:
        yield client


@pytest.fixture(scope="module")
def models_direct(stack: RunningStack) -> Iterator[Client]:
    """Alice, straight to the ModelRegistry (no Envoy)."""
    with Client(stack.service_target("models"), token=alice_token(stack)) as client:
        yield client


@pytest.fixture(scope="module")
def window(stack: RunningStack) -> tuple[datetime, datetime]:
    """The last full hour of demo history."""
    last = admin_rows(stack, "SELECT max(ts) FROM tag_data")[0][0]
    end = last.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(linear_model(16, seed=int(uuid.uuid4().int % 1000)))
    return path

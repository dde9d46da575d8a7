"""Shared fixtures: one real stack for the session (Envoy, both services, PostgreSQL)."""

from __future__ import annotations

import os

# gRPC's fork handlers run in every child forked while gRPC threads are busy (the
# stack fixtures fork PostgreSQL with a preexec_fn while test clients hold
# channels); with them, a forked child can abort before it execs ("Other threads
# are currently calling into gRPC, skipping fork() handlers"). Nothing here forks
# to keep using gRPC in the child. Set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack_runner import RunningStack, start_stack, stop_stack


def private_tmp(prefix: str) -> Path:
    # Not pytest's tmp_path: a new pytest session resets /tmp/pytest-of-<user>
    # to 0700, which locks the unprivileged PostgreSQL user out of its data.
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    root = private_tmp("mlplane-stack-")
    # A week of demo plant keeps the session quick; a small JSON row cap lets
    # the tests cross it with a modest export.
    running = start_stack(
        root / "state",
        MLPLANE_DEMO_PLANT_DAYS="7",
        MLPLANE_QUERY_REST_ROW_CAP="20000",
        MLPLANE_MAX_MODEL_BYTES=str(8 * 1024 * 1024),
        # The gateway's rate limit stays in the chain, far above what the suite sends;
        # tests/security/test_rate_limit.py checks it on a stack of its own.
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="100000",
    )
    try:
        yield running
    finally:
        survivors = stop_stack(running)
        shutil.rmtree(root, ignore_errors=True)
        assert not survivors, f"processes left behind: {survivors}"


@pytest.fixture
def stack_root() -> Iterator[Path]:
    root = private_tmp("mlplane-test-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)

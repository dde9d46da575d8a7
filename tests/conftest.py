"""Shared fixtures: one real stack for the session (Envoy, both services, PostgreSQL), and
the `stack` marker.

Tests by kind: a test that needs real servers (PostgreSQL, Envoy, SeaweedFS, a service on a
port, a browser) or runs the deploy tools (helm, kubernetes-validate, hadolint, promtool) is
marked `stack`, so `pytest -m "not stack"` runs the unit tests alone, in well under a minute;
`pytest` (`make test`) runs both kinds. The marker is given here to every test whose fixture
closure holds a fixture decorated `@starts_servers` (the session `stack` and its kin); a module
whose tests start servers or tools themselves says `pytestmark = pytest.mark.stack`, a single
such test `@pytest.mark.stack`. In-process fakes (a grpc server on port 0 with a fake servicer,
grpc_testing, an HTTP echo on loopback) are unit tests."""

from __future__ import annotations

import os

# gRPC's fork handlers run in every child forked while gRPC threads are busy (the
# stack fixtures fork PostgreSQL with a preexec_fn while test clients hold
# channels); with them, a forked child can abort before it execs ("Other threads
# are currently calling into gRPC, skipping fork() handlers"). Nothing here forks
# to keep using gRPC in the child. Set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from services.common.devkeys import ensure_dev_keys
from services.common.settings import Settings
from tests.stack_runner import LOGGED_BY_STACKS, RunningStack, private_tmp, stack_in_tmp
from tests.tokens import Tokens

F = TypeVar("F", bound=Callable[..., Any])


def starts_servers(fixture: F) -> F:
    """Put under `@pytest.fixture`: every test that uses this fixture, directly or through
    another fixture, is marked `stack`."""
    fixture.starts_servers = True  # type: ignore[attr-defined]
    return fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("stack"):
            continue
        if any(
            getattr(fixturedef.func, "starts_servers", False)
            for name in info.names_closure
            for fixturedef in info.name2fixturedefs.get(name, ())
        ):
            item.add_marker(pytest.mark.stack)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the stacks' services logged as exceptions, passing tests included: one line per
    kind (log file, the exception's last line) with its count and the stacks that logged it,
    then the log message and method of its first occurrence. A new kind is worth a look."""
    if not LOGGED_BY_STACKS:
        return
    kinds: dict[tuple[str, str], tuple[int, set[str], dict[str, Any]]] = {}
    for stack_name, entry in LOGGED_BY_STACKS:
        last = (str(entry["exception"]).strip().splitlines() or [""])[-1][:160]
        count, stacks, first = kinds.get((entry["file"], last), (0, set(), entry))
        kinds[(entry["file"], last)] = (count + 1, stacks | {stack_name}, first)
    terminalreporter.section(f"exceptions the test stacks logged ({len(LOGGED_BY_STACKS)})")
    by_count = sorted(kinds.items(), key=lambda kv: -kv[1][0])
    for (file, last), (count, stacks, first) in by_count[:40]:
        terminalreporter.write_line(f"{count:5d}  {file}: {last}  [{', '.join(sorted(stacks))}]")
        terminalreporter.write_line(f"       {first.get('message')!r} in {first.get('method')}")


@pytest.fixture(scope="session")
@starts_servers
def stack() -> Iterator[RunningStack]:
    # A week of demo plant keeps the session quick; a small JSON row cap lets
    # the tests cross it with a modest export.
    with stack_in_tmp(
        "mlplane-stack-",
        MLPLANE_DEMO_PLANT_DAYS="7",
        MLPLANE_QUERY_REST_ROW_CAP="20000",
        MLPLANE_MAX_MODEL_BYTES=str(8 * 1024 * 1024),
        # The gateway's rate limit stays in the chain, far above what the suite sends;
        # tests/security/test_rate_limit.py checks it on a stack of its own.
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="100000",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    """REST through the session stack's gateway."""
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def dev_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings on a folder of their own with the embedded issuer's dev keys, for unit tests
    that verify tokens without a stack."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("dev-issuer"))
    ensure_dev_keys(settings)
    return settings


@pytest.fixture(scope="session")
def dev_tokens(dev_settings: Settings) -> Tokens:
    """Tokens signed with `dev_settings`' key."""
    return Tokens(dev_settings)


@pytest.fixture
def stack_root() -> Iterator[Path]:
    root = private_tmp("mlplane-test-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)

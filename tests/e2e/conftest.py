"""One stack for the end-to-end journeys, with a month of demo plant.

The session `stack` holds a week, which gives a pump about one failure in four: too few to
train and evaluate the predictive-maintenance example on. Thirty days give every pump at least
one labelled failure; loading them takes a few seconds more than a week does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import private_tmp
from tests.stack_runner import RunningStack, start_stack, stop_stack

E2E_PLANT_DAYS = 30


@pytest.fixture(scope="session")
def e2e_stack() -> Iterator[RunningStack]:
    root = private_tmp("mlplane-e2e-")
    running = start_stack(root / "state", MLPLANE_DEMO_PLANT_DAYS=str(E2E_PLANT_DAYS))
    try:
        yield running
    finally:
        survivors = stop_stack(running)
        shutil.rmtree(root, ignore_errors=True)
        assert not survivors, f"processes left behind: {survivors}"

"""One stack for the end-to-end journeys, with a month of demo plant.

The session `stack` holds a week, which gives a pump about one failure in four: too few to
train and evaluate the predictive-maintenance example on. Thirty days give every pump at least
one labelled failure; loading them takes a few seconds more than a week does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import starts_servers
from tests.stack_runner import RunningStack, stack_in_tmp

E2E_PLANT_DAYS = 30


@pytest.fixture(scope="session")
@starts_servers
def e2e_stack() -> Iterator[RunningStack]:
    with stack_in_tmp("mlplane-e2e-", MLPLANE_DEMO_PLANT_DAYS=str(E2E_PLANT_DAYS)) as running:
        yield running

"""The gateway's per-client rate limit, on a stack of its own with a tiny limit.

A client is a verified (tenant, subject): REST and gRPC share its bucket, another
subject (or the same subject in another tenant) has its own, and what carries no
token (health, CORS preflight) is never limited. Bursts are bounded; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import model_registry_pb2_grpc as mr_grpc

from tests.stack_runner import RunningStack, stack_in_tmp

pytestmark = pytest.mark.stack

RATE, BURST = 1, 10
# Requests after the burst until a 429 must have come: the bucket refills one token a
# second, so this only fails if 40 loopback requests took longer than 40 seconds.
MAX_EXTRA = 40


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningStack]:
    with stack_in_tmp(
        "mlplane-ratelimit-",
        MLPLANE_DEMO_PLANT="false",
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND=str(RATE),
        MLPLANE_GATEWAY_RATE_LIMIT_BURST=str(BURST),
        MLPLANE_VALIDATION_WORKER="false",  # nothing is uploaded here
    ) as running:
        yield running


def _auth(stack: RunningStack, subject: str, tenant: str = "demo") -> dict[str, str]:
    return stack.tokens.headers("data_scientist", subject=subject, tenant=tenant)


def test_burst_over_the_limit_is_429_for_that_client_only(limited: RunningStack) -> None:
    alice = _auth(limited, "alice")
    with httpx.Client(base_url=limited.gateway_url, trust_env=False, timeout=10) as http:
        # Up to the burst, everything passes, and says how much is left.
        below = [http.get("/api/v1/models", headers=alice) for _ in range(BURST)]
        assert [r.status_code for r in below] == [200] * BURST, below[-1].text
        assert below[0].headers["x-ratelimit-limit"] == str(BURST)
        assert int(below[0].headers["x-ratelimit-remaining"]) == BURST - 1

        limited_response = None
        for _ in range(MAX_EXTRA):
            response = http.get("/api/v1/models", headers=alice)
            if response.status_code == 429:
                limited_response = response
                break
            assert response.status_code == 200, response.text
        assert limited_response is not None, "no 429 after the burst"
        body = limited_response.json()
        assert limited_response.headers["content-type"] == "application/json"
        assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert body["details"][0]["reason"] == "RATE_LIMITED"
        assert limited_response.headers["retry-after"] == "1"
        assert limited_response.headers["x-ratelimit-remaining"] == "0"

        # Other clients are not affected: another subject, the same subject elsewhere.
        assert http.get("/api/v1/models", headers=_auth(limited, "bob")).status_code == 200
        other = _auth(limited, "alice", tenant="other")
        assert http.get("/api/v1/models", headers=other).status_code == 200
        # Health and CORS preflights carry no identity and are never limited.
        for _ in range(BURST * 2):
            assert http.get("/healthz").status_code == 200
        preflight = http.options(
            "/api/v1/models",
            headers={
                "origin": "http://localhost:5173",
                "access-control-request-method": "GET",
                "access-control-request-headers": "authorization",
            },
        )
        assert preflight.status_code == 200


def test_grpc_client_gets_resource_exhausted(limited: RunningStack) -> None:
    carol = limited.tokens.metadata("data_scientist", subject="carol")
    with grpc.insecure_channel(
        limited.gateway_target, options=[("grpc.enable_http_proxy", 0)]
    ) as channel:
        stub = mr_grpc.ModelRegistryStub(channel)
        for _ in range(BURST):
            stub.ListModels(mr.ListModelsRequest(), metadata=carol, timeout=10)
        refused = None
        for _ in range(MAX_EXTRA):
            try:
                stub.ListModels(mr.ListModelsRequest(), metadata=carol, timeout=10)
            except grpc.RpcError as error:
                refused = error
                break
        assert refused is not None, "no refusal after the burst"
        # Envoy's default would be UNAVAILABLE, which clients retry at once.
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
        assert "rate limit exceeded" in str(refused.details())
        trailers = {item.key: str(item.value) for item in refused.trailing_metadata() or ()}
        assert trailers.get("retry-after") == "1"
        # REST and gRPC are one client: carol's REST calls are limited as well.
        with httpx.Client(base_url=limited.gateway_url, trust_env=False, timeout=10) as http:
            # (at most one token refilled in between: two tries are enough)
            statuses = [
                http.get("/api/v1/models", headers=_auth(limited, "carol")).status_code
                for _ in range(2)
            ]
            assert 429 in statuses, statuses

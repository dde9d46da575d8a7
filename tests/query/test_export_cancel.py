"""Cancelled exports end quietly and give their connection back clean (issue #14).

Many cancels in a row, mid-stream (mid-COPY on the database side), over REST through
Envoy and over gRPC (through Envoy and straight to the service), CSV and binary; then
normal exports all succeed with the pool at its size, the service log holds no
traceback, and every cancelled export is recorded as cancelled.
"""

from __future__ import annotations

import asyncio

import grpc
import httpx
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from tests.admin_sql import admin_fetch
from tests.query.stack_helpers import (
    BULK_ASSET,
    assert_no_connection_left,
    bulk_window,
    copy_backends,
    iso,
    service_log,
    timestamp,
    wait_for,
)
from tests.stack_runner import RunningStack

POOL_SIZE = 6
CANCELS = 30
SUBJECT = "canceller"


def _authorization(stack: RunningStack) -> str:
    return f"Bearer {stack.tokens.valid('data_scientist', subject=SUBJECT)}"


def _cancel_rest(stack: RunningStack) -> None:
    start, end = bulk_window()
    with (
        httpx.Client(base_url=stack.gateway_url, timeout=60) as client,
        client.stream(
            "GET",
            "/api/v1/query/history:csv",
            params={"assetId": BULK_ASSET, "startTime": iso(start), "endTime": iso(end)},
            headers={"Authorization": _authorization(stack)},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        next(response.iter_raw())  # some rows arrived; then the client hangs up


def _cancel_grpc(stack: RunningStack, kind: str) -> None:
    start, end = bulk_window()
    target = stack.service_target("query") if kind == "rows-direct" else stack.gateway_target
    metadata = (("authorization", _authorization(stack)),)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        if kind == "csv":
            call = stub.ExportHistoryCsv(
                pb.ExportHistoryCsvRequest(
                    asset_id=BULK_ASSET, start_time=timestamp(start), end_time=timestamp(end)
                ),
                metadata=metadata,
                timeout=120,
            )
        else:
            call = stub.ExportHistory(
                pb.ExportHistoryRequest(
                    asset_id=BULK_ASSET,
                    start_time=timestamp(start),
                    end_time=timestamp(end),
                    format=pb.Export.ARROW if kind == "arrow" else pb.Export.ROWS,
                ),
                metadata=metadata,
                timeout=120,
            )
        next(call)
        next(call)  # data is flowing (the COPY runs)
        call.cancel()


KINDS = ("rest", "csv", "arrow", "rows-direct")


def _cancelled_count(stack: RunningStack) -> int:
    rows = asyncio.run(
        admin_fetch(
            stack,
            "SELECT count(*) FROM exports WHERE subject = $1 AND status = 'cancelled'",
            SUBJECT,
        )
    )
    return int(rows[0][0])


def test_many_cancelled_exports_end_quietly_and_leave_the_pool_whole(
    export_stack: RunningStack,
) -> None:
    stack = export_stack
    log_before = len(service_log(stack))
    for i in range(CANCELS):
        kind = KINDS[i % len(KINDS)]
        if kind == "rest":
            _cancel_rest(stack)
        else:
            _cancel_grpc(stack, kind)
        # The next cancel starts once this one's COPY is gone (the per-user limit counts
        # exports still running, and this waits for the connection, not for a time).
        wait_for(lambda: asyncio.run(copy_backends(stack)) == 0, f"cancel {i} ({kind}) ended")

    assert_no_connection_left(stack, POOL_SIZE)
    wait_for(lambda: _cancelled_count(stack) == CANCELS, "every cancel recorded as cancelled")

    # Normal exports all succeed afterwards: more than the pool's size one after another,
    # then as many at once as the user may run.
    start, end = bulk_window(hours=1)
    params = {"assetId": BULK_ASSET, "startTime": iso(start), "endTime": iso(end)}
    headers = {"Authorization": _authorization(stack)}
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        for _ in range(POOL_SIZE + 2):
            response = client.get("/api/v1/query/history:csv", params=params, headers=headers)
            assert response.status_code == 200, response.text
            assert response.text.count("\n") == 3600 + 1
    with grpc.insecure_channel(stack.gateway_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        calls = [
            stub.ExportHistory(
                pb.ExportHistoryRequest(
                    asset_id=BULK_ASSET, start_time=timestamp(start), end_time=timestamp(end)
                ),
                metadata=(("authorization", headers["Authorization"]),),
                timeout=60,
            )
            for _ in range(2)
        ]
        for call in calls:
            messages = list(call)
            assert messages[-1].manifest.status == pb.Export.COMPLETED
            assert messages[-1].manifest.row_count == 3600
    assert_no_connection_left(stack, POOL_SIZE)

    log = service_log(stack)[log_before:]
    for noise in (
        "Traceback",
        "Task exception was never retrieved",
        "cannot switch to state",
        "unhandled error",
        '"level": "ERROR"',
        '"level": "WARNING"',
    ):
        assert noise not in log, f"{noise!r} in the query service log:\n{log[-4000:]}"

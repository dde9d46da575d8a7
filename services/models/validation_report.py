"""A version's validation record (the worker's JSON report) as the contract's message.

The worker (services/validation/worker.py) stores the report as JSON: `runtime` is
`RuntimeCheckReport.to_dict()`, `metrics` the evaluation's (absent without an evaluation
set), `compatibility` `CompatibilityReport.to_dict()`. Reading it leniently (missing keys
are zeros) keeps old reports readable when a later worker writes more.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import model_registry_pb2 as pb

from services.models.repository import ValidationRecord


def validation_report(record: ValidationRecord) -> pb.ValidationReport:
    message = pb.ValidationReport(
        model_id=record.model_id,
        version=record.version,
        state=pb.ValidationReport.State.Value(record.state),
        reason=record.reason,
        message=record.message,
        attempts=record.attempts,
        create_time=timestamp(record.create_time),
    )
    if record.start_time is not None:
        message.start_time.CopyFrom(timestamp(record.start_time))
    if record.complete_time is not None:
        message.complete_time.CopyFrom(timestamp(record.complete_time))
    report = record.report
    if isinstance(report.get("runtime"), Mapping):
        message.runtime.CopyFrom(_runtime(report["runtime"]))
    if isinstance(report.get("metrics"), Mapping):
        message.metrics.CopyFrom(_metrics(report["metrics"]))
    if isinstance(report.get("compatibility"), Mapping):
        message.compatibility.CopyFrom(_compatibility(report["compatibility"]))
    return message


def _runtime(data: Mapping[str, Any]) -> pb.RuntimeCheck:
    limits = data.get("limits") or {}
    return pb.RuntimeCheck(
        passed=data.get("status") == "PASSED",
        reason=data.get("reason") or "",
        message=data.get("message") or "",
        onnxruntime_version=data.get("onnxruntime_version") or "",
        batch_size=int(data.get("batch_size") or 0),
        load_seconds=float(data.get("load_seconds") or 0.0),
        latency_p50_ms=float(data.get("latency_p50_ms") or 0.0),
        latency_p95_ms=float(data.get("latency_p95_ms") or 0.0),
        timed_runs=int(data.get("timed_runs") or 0),
        peak_memory_bytes=int(data.get("peak_memory_bytes") or 0),
        outputs=[
            pb.RuntimeOutput(
                name=str(output.get("name", "")),
                type=str(output.get("type", "")),
                shape=[int(d) for d in output.get("shape") or []],
                non_finite=bool(output.get("non_finite")),
            )
            for output in data.get("outputs") or []
        ],
        non_finite_output=bool(data.get("non_finite_output")),
        limits=pb.SandboxLimits(
            memory_bytes=int(limits.get("memory_bytes") or 0),
            cpu_seconds=int(limits.get("cpu_seconds") or 0),
            wall_seconds=float(limits.get("wall_seconds") or 0.0),
            threads=int(limits.get("threads") or 0),
        ),
        network_isolation=[str(n) for n in data.get("network_isolation") or []],
    )


def _metrics(data: Mapping[str, Any]) -> pb.MetricsVerification:
    message = pb.MetricsVerification(
        passed=bool(data.get("passed")),
        reason=data.get("reason") or "",
        message=data.get("message") or "",
        rows=int(data.get("rows") or 0),
        label_column=data.get("label_column") or "",
        unknown_metrics=[str(n) for n in data.get("unknown") or []],
        threshold=float(data.get("threshold") or 0.0),
    )
    for item in data.get("comparisons") or []:
        check = pb.MetricCheck(
            name=str(item.get("name", "")),
            metric=str(item.get("metric", "")),
            claimed=float(item.get("claimed") or 0.0),
            status=str(item.get("status", "")),
            message=str(item.get("message", "")),
        )
        for key in ("verified", "difference", "tolerance"):
            if item.get(key) is not None:
                setattr(check, key, float(item[key]))
        message.checks.append(check)
    return message


def _compatibility(data: Mapping[str, Any]) -> pb.SignatureCompatibility:
    def differences(key: str) -> list[pb.SignatureDifference]:
        return [
            pb.SignatureDifference(
                change=str(d.get("change", "")),
                side=str(d.get("side", "")),
                tensor=str(d.get("tensor", "")),
                message=str(d.get("message", "")),
                old=str(d.get("old") or ""),
                new=str(d.get("new") or ""),
            )
            for d in data.get(key) or []
        ]

    verdict = str(data.get("verdict", ""))
    return pb.SignatureCompatibility(
        verdict=pb.SignatureCompatibility.Verdict.Value(verdict)
        if verdict in pb.SignatureCompatibility.Verdict.keys()  # noqa: SIM118 (an EnumTypeWrapper)
        else pb.SignatureCompatibility.VERDICT_UNSPECIFIED,
        approved_version=int(data.get("approved_version") or 0),
        breaking=differences("breaking"),
        non_breaking=differences("non_breaking"),
    )


def timestamp(value: datetime) -> Timestamp:
    """A timezone-aware time as a protobuf Timestamp (the servicer's too)."""
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp

"""The runtime check: does a model load and run in ONNX Runtime, and how fast, in a sandbox.

`run_runtime_check(model)` is the worker's call: it runs `inspect_model` in a child process made
by `services.validation.sandbox` (limits on memory, CPU and wall time, no network, empty
environment, scratch directory; see there for the guarantees and their limits) and turns what
came back into a `RuntimeCheckReport`, a JSON-serialisable dataclass. It blocks: a worker on
asyncio calls it through `asyncio.to_thread`.

What the child does (`inspect_model`):
* **Load** the model (`model.onnx` in its scratch directory, by a relative path so that no error
  names a directory) in ONNX Runtime with the CPU provider only, `intra_op_num_threads` and
  `inter_op_num_threads` = `SandboxLimits.threads` (1 by default: comparable figures, no
  oversubscription), sequential execution, no spinning; the load time is measured.
* **Synthetic inputs** from the session's signature. The first dimension, when it is not fixed
  (symbolic like `"batch"`, or unnamed as skl2onnx writes it), and every other symbolic dimension
  are set to `batch_size` (`BATCH_SIZE` = 8: small enough for any model, large enough that
  per-batch latency is not only call overhead); other unnamed dimensions to 1. Values: floating
  point types from a standard normal, seeded (`SEED`), so two runs of one model see the same
  inputs; integers in
  [0, 4) (small: integer inputs are often indices or categories); booleans at random; strings a
  fixed word. Other input types (bfloat16, sequences, maps, optionals) are an
  `UNSUPPORTED_INPUT_TYPE` failure: the check cannot invent them.
* **Inference**: one warm-up run (its outputs are the ones checked), then up to `TIMED_RUNS` (20)
  timed runs, stopping early once `LATENCY_BUDGET_SECONDS` (2 s) of timed runs have passed (at
  least `MIN_TIMED_RUNS`), so a slow model costs a bounded time; P50 and P95 of those runs, per
  batch, in milliseconds.
* **Outputs**: each output's name, ORT type, element type, declared shape and actual shape, and
  whether it holds NaN or infinity. A non-finite output is a flag (`non_finite_output`), not a
  failure: a model may legitimately answer -inf for a log-probability; the approver judges.

Failure reasons: `ORT_LOAD_FAILED`, `UNSUPPORTED_INPUT_TYPE`, `INFERENCE_FAILED`,
`MEMORY_LIMIT` (an allocation failed, whether ONNX Runtime or Python noticed), and from the
sandbox `TIME_LIMIT`, `CPU_LIMIT`, `CRASHED_SIGNAL_<n>`, `CRASHED_EXIT_<n>`, `SANDBOX_UNAVAILABLE`,
`CHECK_ERROR` (the check itself failed: a bug, not the model's fault).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.validation.sandbox import (
    BAD_RESULT,
    MEMORY_LIMIT,
    TARGET_ERROR,
    SandboxLimits,
    looks_like_allocation_failure,
    run_sandboxed,
)

MODEL_FILE = "model.onnx"
BATCH_SIZE = 8
TIMED_RUNS = 20
MIN_TIMED_RUNS = 3
LATENCY_BUDGET_SECONDS = 2.0
SEED = 20240616
INTEGER_HIGH = 4  # integers drawn from [0, INTEGER_HIGH)
MESSAGE_LIMIT = 500

ORT_LOAD_FAILED = "ORT_LOAD_FAILED"
UNSUPPORTED_INPUT_TYPE = "UNSUPPORTED_INPUT_TYPE"
INFERENCE_FAILED = "INFERENCE_FAILED"
CHECK_ERROR = "CHECK_ERROR"


class Status(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class OutputReport:
    name: str
    type: str  # as ONNX Runtime spells it: "tensor(float)", "seq(map(int64,tensor(float)))"
    element_type: str | None  # "float", "int64"... for tensors; None otherwise
    declared_shape: list[int | str | None] | None
    shape: list[int] | None  # of the warm-up run's value; a sequence's is [length]
    non_finite: bool


@dataclass(frozen=True)
class RuntimeCheckReport:
    status: Status
    reason: str | None
    message: str
    onnxruntime_version: str | None = None
    batch_size: int = BATCH_SIZE
    load_seconds: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    timed_runs: int = 0
    peak_memory_bytes: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    outputs: list[OutputReport] = field(default_factory=list)
    non_finite_output: bool = False
    network_isolation: list[str] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeCheckReport:
        values = dict(data)
        values["status"] = Status(values["status"])
        values["outputs"] = [OutputReport(**output) for output in values.get("outputs", [])]
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> RuntimeCheckReport:
        return cls.from_dict(json.loads(text))


def run_runtime_check(
    model: bytes | Path,
    limits: SandboxLimits | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    timed_runs: int = TIMED_RUNS,
    scratch_root: Path | None = None,
    target: Callable[[Any], Any] | None = None,
) -> RuntimeCheckReport:
    """Check `model` (its bytes, or a file to copy) in a sandboxed child. Blocking.

    `target` replaces `inspect_model` in the child: a test hook (e.g. a target that kills itself),
    never set by the worker.
    """
    limits = limits or SandboxLimits()
    outcome = run_sandboxed(
        target or inspect_model,
        {"batch_size": batch_size, "timed_runs": timed_runs, "threads": limits.threads},
        limits=limits,
        files={MODEL_FILE: model},
        scratch_root=scratch_root,
    )
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "peak_memory_bytes": outcome.peak_rss_bytes,
        "wall_seconds": outcome.wall_seconds,
        "cpu_seconds": outcome.cpu_seconds,
        "network_isolation": outcome.network_isolation,
        "limits": asdict(limits),
    }
    if not outcome.ok:
        reason = outcome.reason or BAD_RESULT
        if reason in {TARGET_ERROR, BAD_RESULT}:
            reason = CHECK_ERROR
        return RuntimeCheckReport(Status.FAILED, reason, outcome.message, **common)
    try:
        found = dict(outcome.result)
        if found["reason"] == MEMORY_LIMIT:
            found["message"] = (
                f"{found['message']} (memory limit {limits.memory_bytes // (1024 * 1024)} MiB)"
            )
        return RuntimeCheckReport.from_dict({**found, **common})
    except (KeyError, TypeError, ValueError) as exc:
        return RuntimeCheckReport(
            Status.FAILED, CHECK_ERROR, f"unreadable check result: {exc}"[:MESSAGE_LIMIT], **common
        )


# --- the child's side -------------------------------------------------------------------------


def _failure(reason: str, message: str, **values: Any) -> dict[str, Any]:
    return {"status": Status.FAILED.value, "reason": reason, "message": message, **values}


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MESSAGE_LIMIT]


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default method)."""
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def session_options(threads: int) -> Any:
    """ONNX Runtime session options of every sandboxed run (the check and the evaluation)."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the child's stderr is a diagnostic tail
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def inspect_model(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs in the sandboxed child: load, synthesise inputs, time inference, check outputs.

    Returns the fields of a `RuntimeCheckReport` that only the child knows.
    """
    import numpy as np  # imported here: the parent (a service or the worker) never loads them
    import onnxruntime as ort

    batch_size = int(payload["batch_size"])
    threads = int(payload["threads"])
    version = ort.__version__

    options = session_options(threads)
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(MODEL_FILE, options, providers=["CPUExecutionProvider"])
    except MemoryError as exc:
        return _failure(MEMORY_LIMIT, f"loading the model ran out of memory: {_error_text(exc)}")
    except Exception as exc:
        text = _error_text(exc)
        if looks_like_allocation_failure(text):
            return _failure(MEMORY_LIMIT, f"loading the model ran out of memory: {text}")
        return _failure(ORT_LOAD_FAILED, f"ONNX Runtime cannot load the model: {text}")
    load_seconds = time.perf_counter() - started
    known: dict[str, Any] = {"onnxruntime_version": version, "load_seconds": round(load_seconds, 6)}

    rng = np.random.default_rng(SEED)
    feeds: dict[str, Any] = {}
    for node in session.get_inputs():
        shape = [
            dim
            if isinstance(dim, int) and dim >= 0
            else (batch_size if isinstance(dim, str) or axis == 0 else 1)
            for axis, dim in enumerate(node.shape or [])
        ]
        kind = node.type
        if kind in {"tensor(float)", "tensor(double)", "tensor(float16)"}:
            dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(
                kind, np.float16
            )
            feeds[node.name] = rng.standard_normal(shape).astype(dtype)
        elif kind.startswith("tensor(int") or kind.startswith("tensor(uint"):
            dtype = np.dtype(kind[len("tensor(") : -1])
            feeds[node.name] = rng.integers(0, INTEGER_HIGH, size=shape).astype(dtype)
        elif kind == "tensor(bool)":
            feeds[node.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif kind == "tensor(string)":
            feeds[node.name] = np.full(shape, "a", dtype=object)
        else:
            return _failure(
                UNSUPPORTED_INPUT_TYPE,
                f"input {node.name!r} is of type {kind}: the check cannot synthesise it",
                **known,
            )

    declared = {node.name: (node.type, node.shape) for node in session.get_outputs()}
    try:
        values = session.run(None, feeds)
        timings: list[float] = []
        budget_end = time.perf_counter() + LATENCY_BUDGET_SECONDS
        for index in range(int(payload["timed_runs"])):
            if index >= MIN_TIMED_RUNS and time.perf_counter() > budget_end:
                break
            begin = time.perf_counter()
            session.run(None, feeds)
            timings.append((time.perf_counter() - begin) * 1000)
    except MemoryError as exc:
        return _failure(MEMORY_LIMIT, f"inference ran out of memory: {_error_text(exc)}", **known)
    except Exception as exc:
        text = _error_text(exc)
        if looks_like_allocation_failure(text):
            return _failure(MEMORY_LIMIT, f"inference ran out of memory: {text}", **known)
        return _failure(INFERENCE_FAILED, f"inference failed: {text}", **known)

    outputs = []
    for (name, (kind, shape)), value in zip(declared.items(), values, strict=True):
        outputs.append(
            {
                "name": name,
                "type": kind,
                "element_type": kind[len("tensor(") : -1] if kind.startswith("tensor(") else None,
                "declared_shape": list(shape) if shape is not None else None,
                "shape": _shape_of(value),
                "non_finite": _holds_non_finite(value),
            }
        )
    timings.sort()
    return {
        "status": Status.PASSED.value,
        "reason": None,
        "message": "",
        **known,
        "latency_p50_ms": round(_percentile(timings, 0.5), 4) if timings else None,
        "latency_p95_ms": round(_percentile(timings, 0.95), 4) if timings else None,
        "timed_runs": len(timings),
        "outputs": outputs,
        "non_finite_output": any(output["non_finite"] for output in outputs),
    }


def _shape_of(value: Any) -> list[int] | None:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return [int(dim) for dim in shape]
    if isinstance(value, list | dict):
        return [len(value)]
    return None


def _holds_non_finite(value: Any) -> bool:
    import numpy as np

    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating) or np.issubdtype(
            value.dtype, np.complexfloating
        ):
            return not bool(np.isfinite(value).all())
        return False
    if isinstance(value, dict):
        return any(_holds_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_non_finite(item) for item in value)
    if isinstance(value, float):
        return value != value or value in {float("inf"), float("-inf")}
    return False


def main(argv: list[str] | None = None) -> int:
    """`python -m services.validation.runtime_check MODEL.onnx`: print the report as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m services.validation.runtime_check MODEL.onnx", file=sys.stderr)
        return 2
    # By its importable name: run as __main__, this module's inspect_model is not importable
    # as "__main__:inspect_model" in the child.
    from services.validation.runtime_check import run_runtime_check as run

    report = run(Path(args[0]))
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

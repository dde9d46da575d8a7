"""The runtime check: real models run in ONNX Runtime in the sandbox, good and bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.validation import runtime_check
from services.validation.runtime_check import (
    BATCH_SIZE,
    INFERENCE_FAILED,
    ORT_LOAD_FAILED,
    UNSUPPORTED_INPUT_TYPE,
    RuntimeCheckReport,
    Status,
    run_runtime_check,
)
from services.validation.sandbox import (
    CPU_LIMIT,
    MEMORY_LIMIT,
    TIME_LIMIT,
    MiB,
    SandboxLimits,
)
from tests.validation import models, sandbox_targets
from tests.validation.leftovers import nothing_left_behind

scratch_root = pytest.fixture(nothing_left_behind)


def test_a_good_model_passes_with_sane_figures(scratch_root: Path) -> None:
    report = run_runtime_check(models.classifier_model(), scratch_root=scratch_root)
    assert report.status is Status.PASSED, report
    assert report.reason is None
    assert report.onnxruntime_version == "1.32.0"
    assert report.batch_size == BATCH_SIZE
    assert report.load_seconds is not None
    assert 0 < report.load_seconds < 5
    assert report.latency_p50_ms is not None
    assert report.latency_p95_ms is not None
    assert 0 < report.latency_p50_ms <= report.latency_p95_ms < 1000
    assert report.timed_runs == runtime_check.TIMED_RUNS
    assert 10 * MiB < report.peak_memory_bytes < 1024 * MiB
    assert [
        (o.name, o.type, o.element_type, o.declared_shape, o.shape) for o in report.outputs
    ] == [
        ("probability", "tensor(float)", "float", ["batch", 1], [BATCH_SIZE, 1]),
        ("label", "tensor(int64)", "int64", ["batch", 1], [BATCH_SIZE, 1]),
    ]
    assert not report.non_finite_output
    assert report.network_isolation  # at least the audit hook held
    assert report.limits["memory_bytes"] == SandboxLimits().memory_bytes


def test_inputs_of_every_simple_type_are_synthesised(scratch_root: Path) -> None:
    report = run_runtime_check(models.mixed_inputs_model(), batch_size=3, scratch_root=scratch_root)
    assert report.passed, report
    shapes = {output.name: output.shape for output in report.outputs}
    # Symbolic dimensions take the batch size, unnamed unknown ones 1, fixed ones stay.
    assert shapes == {"d_out": [3, 1, 3], "i_out": [2], "f_out": [3], "s_out": [3]}


def test_an_unnamed_first_dimension_is_the_batch(scratch_root: Path) -> None:
    # skl2onnx writes [None, k]: the figures must be per batch of 8, as the report says.
    report = run_runtime_check(models.unnamed_batch_model(3), scratch_root=scratch_root)
    assert report.passed, report
    assert [output.shape for output in report.outputs] == [[BATCH_SIZE, 3]]


def test_non_finite_output_is_a_flag_not_a_failure(scratch_root: Path) -> None:
    report = run_runtime_check(models.non_finite_model(), scratch_root=scratch_root)
    assert report.passed, report
    assert report.non_finite_output
    assert [output.non_finite for output in report.outputs] == [True]


def test_a_model_onnx_accepts_but_onnx_runtime_cannot_load(scratch_root: Path) -> None:
    report = run_runtime_check(models.custom_op_model(), scratch_root=scratch_root)
    assert report.status is Status.FAILED
    assert report.reason == ORT_LOAD_FAILED
    assert "Mystery" in report.message
    assert str(scratch_root) not in report.message  # loaded by a relative name: no paths
    assert report.load_seconds is None
    assert report.outputs == []


def test_a_model_allocating_far_past_the_memory_limit(scratch_root: Path) -> None:
    limits = SandboxLimits(memory_bytes=768 * MiB)
    report = run_runtime_check(models.memory_hog_model(), limits, scratch_root=scratch_root)
    assert report.status is Status.FAILED
    assert report.reason == MEMORY_LIMIT, report
    assert "768 MiB" in report.message
    assert report.peak_memory_bytes < 768 * MiB


def test_inference_past_the_wall_clock_limit(scratch_root: Path) -> None:
    limits = SandboxLimits(wall_seconds=1.5, cpu_seconds=30)
    report = run_runtime_check(models.endless_loop_model(), limits, scratch_root=scratch_root)
    assert report.status is Status.FAILED
    assert report.reason == TIME_LIMIT
    assert 1.5 <= report.wall_seconds < 5


def test_inference_past_the_cpu_limit(scratch_root: Path) -> None:
    limits = SandboxLimits(wall_seconds=30, cpu_seconds=1)
    report = run_runtime_check(models.endless_loop_model(), limits, scratch_root=scratch_root)
    assert report.reason == CPU_LIMIT
    assert report.wall_seconds < 5


def test_a_crashing_runtime_is_a_failed_report(scratch_root: Path) -> None:
    report = run_runtime_check(
        models.classifier_model(), target=sandbox_targets.segfault, scratch_root=scratch_root
    )
    assert report.status is Status.FAILED
    assert report.reason == "CRASHED_SIGNAL_11"


def test_inference_that_fails(scratch_root: Path) -> None:
    report = run_runtime_check(models.wrong_rank_model(), scratch_root=scratch_root)
    assert report.reason == INFERENCE_FAILED
    assert "Reshape" in report.message
    assert report.load_seconds is not None  # it did load


def test_an_input_the_check_cannot_invent(scratch_root: Path) -> None:
    report = run_runtime_check(models.sequence_input_model(), scratch_root=scratch_root)
    assert report.reason == UNSUPPORTED_INPUT_TYPE
    assert "seq(tensor(float))" in report.message


def test_the_report_is_json_and_back(scratch_root: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(models.classifier_model())
    report = run_runtime_check(model, scratch_root=scratch_root)  # a file, copied
    assert report.passed
    text = report.to_json()
    assert json.loads(text)["status"] == "PASSED"
    assert RuntimeCheckReport.from_json(text) == report


def test_the_command_line(
    scratch_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(models.custom_op_model())
    assert runtime_check.main([str(model)]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == ORT_LOAD_FAILED

"""The predictive-maintenance example: the committed notebook is the generated one, and
it runs headless (nbclient, a real ipykernel) through the SDK against a month of demo
plant, printing exactly the output the README shows and ending with an approved model
version whose window, lineage, validation report (the held-out pump's rows uploaded as its
evaluation set, the claimed metrics reproduced on them) and audit trail are checked here
without the SDK.

The README's figures come from the default 90-day plant; this stack holds 30 days. The plant
is the same data relative to its anchor however much of it is loaded, and whenever, so the
30 days before the anchor, the example's window, give the same figures on both."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import re
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import asyncpg
import httpx
import nbclient
import nbformat
import pandas as pd
import pytest

from tests.e2e.conftest import E2E_PLANT_DAYS
from tests.e2e.journey import audit_trail
from tests.stack_runner import ROOT, RunningStack

EXAMPLES = ROOT / "examples"


def _make_notebook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_notebook", EXAMPLES / "make_notebook.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_committed_notebook_is_generated_from_the_script() -> None:
    make = _make_notebook()
    expected = make.render((EXAMPLES / "predictive_maintenance.py").read_text())
    assert (EXAMPLES / "predictive_maintenance.ipynb").read_text() == expected, (
        "examples/predictive_maintenance.ipynb is stale: run python examples/make_notebook.py"
    )


def test_markdown_cells_must_be_comments() -> None:
    make = _make_notebook()
    with pytest.raises(ValueError, match="not a comment"):
        make.render("# %% [markdown]\n# Title\nx = 1\n")
    cells = json.loads(make.render("# %% [markdown]\n# Title\n#\n# text\n# %%\nx = 1\n"))["cells"]
    assert [(c["cell_type"], "".join(c["source"])) for c in cells] == [
        ("markdown", "Title\n\ntext"),
        ("code", "x = 1"),
    ]


def _readme_output() -> list[str]:
    """The example's printed output as the README shows it: the plain ``` block with the
    metrics table."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    kinds: list[str] = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
                kinds.append(line[3:].strip())
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    shown = [
        b for b, kind in zip(blocks, kinds, strict=False) if not kind and "ROC AUC" in "".join(b)
    ]
    assert len(shown) == 1, "the README shows the example's output in one plain ``` block"
    return shown[0]


async def _pumps_first_and_last(stack: RunningStack) -> tuple[datetime, datetime]:
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        row = await conn.fetchrow(
            "SELECT min(ts), max(ts) FROM tag_data JOIN assets USING (asset_pk)"
            " WHERE tenant_id = 'demo' AND asset_id LIKE 'pump-%'"
        )
    finally:
        await conn.close()
    assert row is not None
    return row[0], row[1]


def _kernel_dir(root: Path) -> Path:
    """A `python3` kernelspec running this very interpreter, found first on JUPYTER_PATH:
    whatever kernels the machine has installed elsewhere, the notebook runs in this venv."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (mlplane tests)",
                "language": "python",
            }
        )
    )
    return root


def test_notebook_runs_headless_to_an_approved_model(
    e2e_stack: RunningStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = e2e_stack
    tag = uuid.uuid4().hex[:8]
    scientist, approver, name = f"nb-scientist-{tag}", f"nb-approver-{tag}", f"pump-risk-{tag}"
    jupyter = _kernel_dir(tmp_path / "jupyter")
    for key, value in {
        "JUPYTER_PATH": str(jupyter),
        "JUPYTER_DATA_DIR": str(jupyter),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MLPLANE_URL": stack.gateway_target,
        "MLPLANE_TOKEN": stack.tokens.valid("data_scientist", subject=scientist),
        "MLPLANE_APPROVER_TOKEN": stack.tokens.valid("model_approver", subject=approver),
        "MLPLANE_EXAMPLE_DAYS": "30",
        "MLPLANE_DEMO_PLANT_DAYS": str(E2E_PLANT_DAYS),
        "MLPLANE_EXAMPLE_MODEL_NAME": name,
        "MLPLANE_EXAMPLE_OUT": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)

    notebook = nbformat.read(EXAMPLES / "predictive_maintenance.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        # The repository root: `mlplane_client` imports from the checkout as in a clone.
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()  # raises CellExecutionError with the cell's traceback on any failure

    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("name") == "stdout"
    )
    assert f"{name} v1: APPROVED" in text, text[-3000:]

    # Exactly what the README shows, but for the model's name and the anchor's date (the
    # Monday of the week this stack first started).
    printed = [line for line in text.splitlines() if line.strip()]
    expected = [line.replace("pump-failure-48h", name) for line in _readme_output()]
    first, last = asyncio.run(_pumps_first_and_last(stack))
    anchor = first + timedelta(days=E2E_PLANT_DAYS)
    expected = [
        re.sub(r"\d{4}-\d\d-\d\d UTC$", f"{anchor:%Y-%m-%d} UTC", line)
        if line.startswith("8 pumps;")
        else line
        for line in expected
    ]
    assert printed == expected, (
        "the README's output block of the example is not what the notebook printed:\n"
        + "\n".join(printed)
    )

    # Checked without the SDK: the version as the registry stores it, and who did what.
    headers = {"Authorization": f"Bearer {stack.tokens.valid('data_scientist')}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as http:
        models = http.get("/api/v1/models", params={"filter": f'name = "{name}"'}).json()
        (model,) = models["models"]
        version = http.get(f"/api/v1/models/{model['modelId']}/versions/1").json()
        exports = [
            http.get(f"/api/v1/query/exports/{export_id}").json()
            for export_id in version["trainingExportIds"]
        ]
        report = http.get(f"/api/v1/models/{model['modelId']}/versions/1/validation").json()
    assert version["status"] == "APPROVED"
    assert sorted(e["assetId"] for e in exports) == [f"pump-{i:03d}" for i in range(1, 9)]
    assert {(e["status"], e["createdBy"]) for e in exports} == {("COMPLETED", scientist)}
    # The window: the 30 days before the anchor, all of it stored.
    windows = {(e["startTime"], e["endTime"]) for e in exports}
    assert windows == {(_iso(anchor - timedelta(days=30)), _iso(anchor))}
    assert first <= anchor - timedelta(days=30)
    assert anchor <= last
    metrics = version["metrics"]
    for metric in ("roc_auc", "average_precision", "f1"):
        assert metrics[metric] > metrics[f"baseline_{metric}"], metrics
    uploaded = (tmp_path / "pump_failure_48h.onnx").read_bytes()
    assert hashlib.sha256(uploaded).hexdigest() == version["sha256"]

    # The held-out pump's rows went with the upload, and the claimed metrics held on them.
    assert (version["validationState"], version["hasEvaluationSet"]) == ("PASSED", True)
    held_out = pd.read_parquet(tmp_path / f"{version['labels']['holdout']}_holdout.parquet")
    assert (len(held_out.columns), held_out.columns[-1]) == (16, "label")  # 15 features
    assert report["state"] == "PASSED", report
    assert report["runtime"]["passed"] is True
    verification = report["metrics"]
    assert (int(verification["rows"]), verification["labelColumn"]) == (len(held_out), "label")
    checks = {c["name"]: c for c in verification["checks"]}
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(
        ("roc_auc", "average_precision", "f1"), "MATCH"
    )
    for name, check in checks.items():
        assert abs(check["verified"] - metrics[name]) <= check["tolerance"], check
    assert sorted(verification["unknownMetrics"]) == sorted(
        name for name in metrics if name.startswith("baseline_")
    )

    trail = [
        (r["subject"], r["action"], r["outcome"]) for r in audit_trail(stack, scientist, approver)
    ]
    assert trail.count((scientist, "history.export", "completed")) == 8
    assert trail.count((scientist, "history.failure_events", "completed")) == 8
    assert trail[-3:] == [
        (scientist, "model.upload", "ok"),
        (scientist, "approval.submit", "ok"),
        (approver, "approval.approve", "approved"),
    ]

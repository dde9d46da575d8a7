"""The predictive-maintenance example: the committed notebook is the generated one, and
it runs headless (nbclient, a real ipykernel) through the SDK against a month of demo
plant, ending with an approved model version whose lineage and audit trail are checked
here without the SDK."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType

import httpx
import nbclient
import nbformat
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
        "MLPLANE_EXAMPLE_DAYS": str(E2E_PLANT_DAYS),
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
    )
    assert f"{name} v1: MODEL_VERSION_STATUS_APPROVED" in text, text[-3000:]

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
    assert version["status"] == "MODEL_VERSION_STATUS_APPROVED"
    assert sorted(e["assetId"] for e in exports) == [f"pump-{i:03d}" for i in range(1, 9)]
    assert {(e["status"], e["createdBy"]) for e in exports} == {("completed", scientist)}
    metrics = version["metrics"]
    for metric in ("roc_auc", "average_precision", "f1"):
        assert metrics[metric] > metrics[f"baseline_{metric}"], metrics
    uploaded = (tmp_path / "pump_failure_48h.onnx").read_bytes()
    assert hashlib.sha256(uploaded).hexdigest() == version["sha256"]

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

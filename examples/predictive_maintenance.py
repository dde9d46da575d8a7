# %% [markdown]
# # Predictive maintenance: from plant history to an approved model
#
# The whole mlplane journey in one notebook, against the demo plant of `make up`:
#
# 1. export a month of pump history (read-only, audited, with a manifest per export);
# 2. label it "the pump fails within the next 48 hours" from the recorded failure events;
# 3. train a scikit-learn model on seven pumps and evaluate it on the eighth, which it never saw;
# 4. convert it to ONNX and check the ONNX model gives the same answers;
# 5. upload it with its metrics, its training exports as lineage and the held-out pump's rows
#    as an evaluation set;
# 6. wait for the registry's validation report: the model run in ONNX Runtime in a sandbox,
#    and its claimed metrics reproduced on the held-out rows; then submit it for review;
# 7. approve it with a second person's token (an approver can never approve their own work).
#
# Settings come from the environment: `MLPLANE_URL` (default `localhost:8080`),
# `MLPLANE_TOKEN` (a `data_scientist`), `MLPLANE_APPROVER_TOKEN` (a `model_approver`),
# `MLPLANE_EXAMPLE_DAYS` (default 30) and `MLPLANE_DEMO_PLANT_DAYS` (default 90, as for the
# stack). Without tokens, dev tokens are minted with `mlplane token`, which finds a local
# `make up` stack from any folder.
#
# `examples/predictive_maintenance.ipynb` is generated from `examples/predictive_maintenance.py`
# by `examples/make_notebook.py`: edit the script, then regenerate the notebook.

# %%
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from skl2onnx import to_onnx
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from mlplane_client import Client


def dev_token(role: str, subject: str) -> str:
    """A token from the dev issuer of the local `make up` stack."""
    mlplane = shutil.which("mlplane", path=str(Path(sys.executable).parent)) or "mlplane"
    command = [mlplane, "token", "--role", role, "--subject", subject, "--tenant", "demo"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


URL = os.environ.get("MLPLANE_URL", "localhost:8080")
TOKEN = os.environ.get("MLPLANE_TOKEN") or dev_token("data_scientist", "alice")
APPROVER_TOKEN = os.environ.get("MLPLANE_APPROVER_TOKEN") or dev_token("model_approver", "bob")
DAYS = float(os.environ.get("MLPLANE_EXAMPLE_DAYS", "30"))
PLANT_DAYS = float(os.environ.get("MLPLANE_DEMO_PLANT_DAYS", "90"))
MODEL_NAME = os.environ.get("MLPLANE_EXAMPLE_MODEL_NAME", "pump-failure-48h")
HORIZON = timedelta(hours=48)  # the label: "fails within the next 48 hours"
TAGS = ["vibration_rms", "bearing_temp", "discharge_pressure", "flow", "motor_current"]

# %% [markdown]
# ## The window: the days before the plant's anchor
#
# The demo plant is anchored on a Monday 00:00 UTC, the one starting the week it was first
# loaded, and holds the same data relative to that anchor on every machine, whenever it was
# loaded; `make up` then keeps it live, a sample a minute. A window ending "now" would catch
# different failures on every run. The days before the anchor hold the same rows everywhere,
# so this notebook prints the figures the README shows. The anchor is found from the assets:
# the stored history starts `MLPLANE_DEMO_PLANT_DAYS` days before it.

# %%
client = Client(URL, token=TOKEN, timeout=30.0)
pumps = [a for a in client.list_assets() if a.asset_id.startswith("pump-")]
first = {a.first_time for a in pumps}
newest = min(a.last_time for a in pumps)
anchor = first.pop() + timedelta(days=PLANT_DAYS)
midnight = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
if first or anchor != midnight or anchor.weekday() != 0:
    raise SystemExit(
        "the pumps' history does not start MLPLANE_DEMO_PLANT_DAYS before a Monday 00:00 UTC: "
        "set MLPLANE_DEMO_PLANT_DAYS to the value the stack was started with"
    )
end = anchor
start = end - timedelta(days=DAYS)
assert newest >= end, "the plant has no history up to its anchor"
print(f"{len(pumps)} pumps; the {DAYS:g} days before the plant's anchor, {anchor:%Y-%m-%d} UTC")

# %% [markdown]
# ## 1. Export the history and the failure events
#
# Each export streams Arrow from the gateway into pandas and comes with a manifest: its id,
# row count and the SHA-256 of the bytes received (the SDK checks it). The ids are the
# model's lineage. One sample a minute for five tags is 7,200 rows per pump and day.

# %%
exports = {}
failures = {}
for asset in pumps:
    pump = asset.asset_id
    exports[pump] = client.export_history(pump, start, end, tags=TAGS, progress=True)
    failures[pump] = client.list_failure_events(pump, start=start, end=end)

events = pd.concat(failures.values(), ignore_index=True)
print(f"{sum(e.manifest.rows for e in exports.values()):,} rows in {len(exports)} exports")
events[["asset_id", "start_time", "end_time", "failure_mode"]]

# %% [markdown]
# ## 2. Features and labels
#
# Pumps differ in size, so every signal is divided by the pump's own median while running.
# Features are rolling statistics of the minute data, sampled once an hour: the 6-hour and
# 24-hour medians of each tag (slow drifts: bearing temperature and vibration creep up,
# pressure and flow sag) and the 1-hour standard deviation (cavitation makes flow surge and
# vibration spiky). A pump that is off (motor current near zero) contributes no samples.
#
# The label at hour *t* is 1 when a failure starts within the next 48 hours. Hours while the
# pump is down for repair are dropped, and so are the last 48 hours of the window, whose
# future we have not seen yet.


# %%
def features(wide: pd.DataFrame) -> pd.DataFrame:
    running = wide["motor_current"] > 0.3 * wide["motor_current"].median()
    scaled = wide[TAGS].where(running) / wide[TAGS].where(running).median()
    columns = {}
    for tag in TAGS:
        series = scaled[tag]
        columns[f"{tag}_median_6h"] = series.rolling("6h", min_periods=60).median()
        columns[f"{tag}_median_24h"] = series.rolling("24h", min_periods=240).median()
        columns[f"{tag}_std_1h"] = series.rolling("1h", min_periods=30).std()
    table = pd.DataFrame(columns)
    table["running"] = running
    return table.resample("1h").last()


def labels(hours: pd.DatetimeIndex, events: pd.DataFrame, end) -> tuple[np.ndarray, np.ndarray]:
    """(fails within HORIZON, usable) for each hour."""
    fails = np.zeros(len(hours), dtype=bool)
    usable = np.asarray(hours <= end - HORIZON)
    for event in events.itertuples():
        fails |= np.asarray((hours < event.start_time) & (hours >= event.start_time - HORIZON))
        repaired = event.end_time if pd.notna(event.end_time) else end
        usable &= ~np.asarray((hours >= event.start_time) & (hours <= repaired))
    return fails, usable


tables = {}
for pump, export in exports.items():
    table = features(export.wide())
    fails, usable = labels(table.index, failures[pump], end)
    table["label"] = fails
    tables[pump] = table[usable & table["running"].astype(bool)].drop(columns="running").dropna()

FEATURES = [c for c in tables[pumps[0].asset_id].columns if c != "label"]
# Hold out the last pump that failed in the window: the model never sees it in training.
HOLDOUT = os.environ.get("MLPLANE_EXAMPLE_HOLDOUT") or max(
    p for p in tables if tables[p]["label"].any()
)
train = pd.concat(t for p, t in tables.items() if p != HOLDOUT)
test = tables[HOLDOUT]
positive = train["label"].mean()
print(f"train: {len(train)} pump-hours of {len(tables) - 1} pumps, {positive:.1%} positive")
print(f"test:  {len(test)} pump-hours of {HOLDOUT}, {int(test['label'].sum())} positive")

# %% [markdown]
# ## 3. Train, and compare with a trivial baseline on the held-out pump
#
# The baseline knows only how often pumps fail (it always answers the training base rate),
# and for F1 it raises the alarm all the time. The model must beat it on every metric.

# %%
x_train = train[FEATURES].to_numpy(dtype=np.float32)
y_train = train["label"].to_numpy()
x_test = test[FEATURES].to_numpy(dtype=np.float32)
y_test = test["label"].to_numpy()

model = RandomForestClassifier(
    n_estimators=100,
    max_depth=8,
    min_samples_leaf=5,
    class_weight="balanced",
    random_state=0,
    n_jobs=2,
).fit(x_train, y_train)
baseline = DummyClassifier(strategy="prior").fit(x_train, y_train)

p_model = model.predict_proba(x_test)[:, 1]
p_base = baseline.predict_proba(x_test)[:, 1]
metrics = {
    "roc_auc": roc_auc_score(y_test, p_model),
    "average_precision": average_precision_score(y_test, p_model),
    "f1": f1_score(y_test, p_model >= 0.5),
    "baseline_roc_auc": roc_auc_score(y_test, p_base),
    "baseline_average_precision": average_precision_score(y_test, p_base),
    "baseline_f1": f1_score(y_test, np.ones_like(y_test)),
}
print(
    pd.DataFrame(
        {
            "model": [metrics["roc_auc"], metrics["average_precision"], metrics["f1"]],
            "baseline": [
                metrics["baseline_roc_auc"],
                metrics["baseline_average_precision"],
                metrics["baseline_f1"],
            ],
        },
        index=["ROC AUC", "average precision", "F1 @ 0.5"],
    ).round(3)
)
for name in ("roc_auc", "average_precision", "f1"):
    assert metrics[name] > metrics[f"baseline_{name}"], (
        f"the model does not beat the baseline on {name}"
    )

# %% [markdown]
# ## 4. Convert to ONNX and check it answers like scikit-learn
#
# `zipmap=False` makes the probabilities a plain float tensor instead of a list of maps,
# which is what a serving runtime wants.

# %%
onnx_model = to_onnx(model, x_train[:1], options={id(model): {"zipmap": False}})
workdir = Path(os.environ.get("MLPLANE_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="mlplane-example-"))
onnx_path = workdir / "pump_failure_48h.onnx"
onnx_path.write_bytes(onnx_model.SerializeToString())
print(
    f"{onnx_path.stat().st_size:,} bytes, IR {onnx_model.ir_version}, opsets "
    + ", ".join(f"{o.domain or '(default)'} {o.version}" for o in onnx_model.opset_import)
)

session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
onnx_labels, onnx_proba = session.run(None, {session.get_inputs()[0].name: x_test})
assert np.array_equal(onnx_labels, model.predict(x_test))
assert np.allclose(onnx_proba[:, 1], p_model, atol=1e-5)
print(f"ONNX reproduces scikit-learn on {len(x_test)} held-out rows")

# %% [markdown]
# ## 5. Upload with metrics, lineage and the held-out rows
#
# The registry checks the ONNX file, stores it, and records the metrics and the ids of the
# exports it was trained on. The held-out pump's rows go with it as an evaluation set: a
# Parquet file of the model's input columns, in training order (the ONNX model has one input
# of 15 columns, which takes the file's feature columns in order), and a `label` column.
# The new version waits in `PENDING_APPROVAL`.

# %%
holdout_path = workdir / f"{HOLDOUT}_holdout.parquet"
test[[*FEATURES, "label"]].to_parquet(holdout_path, index=False)
version = client.upload_model(
    onnx_path,
    MODEL_NAME,
    f"Random forest: a pump fails within {HORIZON.total_seconds() / 3600:g} h; "
    f"trained on {DAYS:g} days of {len(tables) - 1} pumps, evaluated on {HOLDOUT}",
    metrics=metrics,
    training_exports=[export.export_id for export in exports.values()],
    labels={"holdout": HOLDOUT, "horizon_hours": f"{HORIZON.total_seconds() / 3600:g}"},
    evaluation_set=holdout_path,
    progress=True,
)

# %% [markdown]
# ## 6. The validation report, then submit for review
#
# A validation worker loads the version in ONNX Runtime in a sandboxed process (no network,
# limited memory and time), times it, and scores the held-out rows with it to recompute the
# metrics claimed at upload (the baselines are not metrics it knows: it lists them without
# checking them). A version can be approved only once its report has `PASSED`. Submitting
# it moves it to `IN_REVIEW`.

# %%
report = client.wait_for_validation(version.model_id, version.version, timeout=90)
failure = f"validation {report.state}: {report.reason} {report.message}"
assert report.metrics is not None, failure
SHOWN = {"roc_auc": "ROC AUC", "average_precision": "average precision", "f1": "F1 @ 0.5"}
checks = [report.metrics.check(name) for name in SHOWN]
print(f"validation {report.state} on {report.metrics.rows} held-out rows of {HOLDOUT}")
print(
    pd.DataFrame(
        {
            "claimed": [check.claimed for check in checks],
            "verified": [check.verified for check in checks],
            "status": [check.status for check in checks],
        },
        index=list(SHOWN.values()),
    ).round(3)
)
assert report.state == "PASSED", failure

approval = client.submit_for_approval(
    version.model_id,
    version=version.version,
    comment=f"ROC AUC {metrics['roc_auc']:.3f} on held-out {HOLDOUT} "
    f"(baseline {metrics['baseline_roc_auc']:.3f}), reproduced by validation",
)
print(f"{version.name} v{version.version} ({version.sha256[:12]}...) in review")

# %% [markdown]
# ## 7. Approve, as someone else
#
# An approver sees the version's signature, metrics, lineage and validation report in the
# review queue and decides. Whoever uploaded or submitted a version can never approve it.

# %%
approver = Client(URL, token=APPROVER_TOKEN, timeout=30.0)
approver.approve(approval.approval_id, comment="beats the baseline on a held-out pump")
final = client.get_version(version.model_id, version.version)
print(f"{final.name} v{final.version}: {final.status}")
assert final.status == "APPROVED"
assert (final.validation_state, final.has_evaluation_set) == ("PASSED", True)
assert sorted(final.training_export_ids) == sorted(e.export_id for e in exports.values())
client.close()
approver.close()
# In a notebook the cell shows the version as a table: status, metrics, signature, lineage.
final

"""What the REST and gRPC journeys share: a small real model trained on the exported
rows, and the audit trail read back as the admin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from tests.admin_sql import admin_rows
from tests.stack_runner import RunningStack

FEATURES = ["bearing_temp", "discharge_pressure", "flow", "motor_current"]


def train_onnx(long: pd.DataFrame) -> bytes:
    """A logistic regression on one export (long rows: time, tag, value): does the
    vibration run above its median, given the other four tags? Small and real:
    scikit-learn trained, skl2onnx converted, as a data scientist would bring it."""
    wide = long.pivot_table(index="time", columns="tag", values="value").dropna()
    x = wide[FEATURES].to_numpy(dtype=np.float32)
    y = (wide["vibration_rms"] > wide["vibration_rms"].median()).to_numpy()
    model = LogisticRegression(max_iter=500).fit(x, y)
    onnx_model = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    return bytes(onnx_model.SerializeToString())


def audit_trail(stack: RunningStack, *subjects: str) -> list[dict[str, Any]]:
    """Every audit row of these subjects, oldest first."""

    rows = admin_rows(
        stack,
        "SELECT subject, action, resource, outcome, detail FROM audit_log"
        " WHERE subject = ANY($1::text[]) ORDER BY audit_pk",
        list(subjects),
    )
    return [dict(r) for r in rows]

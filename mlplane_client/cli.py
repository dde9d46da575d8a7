"""The client verbs of the `mlplane` command (`assets`, `export`, `upload`, …).

Kept whole (over 400 lines): one verb per SDK method, each a parser and a short handler, in
the order `mlplane --help` lists them.

`services/cli.py` owns the entry point and registers these with
`add_client_commands`. Every verb takes `--url`/`--token` (or `MLPLANE_URL`,
`MLPLANE_TOKEN`; `MLPLANE_CA_FILE` for a private CA), prints a table for humans
or `--json` for scripts (the proto3 JSON a REST caller gets for the same
resource), and exits 1 when the server refuses, with one line on stderr
(`mlplane: NOT_FOUND MODEL_NOT_FOUND: …`) and, for the usual ways to get stuck,
a second one saying what to do (`hint: pass --token or set MLPLANE_TOKEN …`);
2 for usage errors.

`mlplane validation show MODEL_ID VERSION` exits 0 whenever the report could be
read, whatever its state: a FAILED validation is an answer, not an error (a
script gates on it with `--json` and `.state == "PASSED"`). With `--wait` it
exits 1 when the report is still PENDING or RUNNING after `--wait-timeout`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplane_client._hints import CLI
from mlplane_client._record import binary_size
from mlplane_client.errors import MlplaneError

if TYPE_CHECKING:
    from mlplane_client.client import Client
    from mlplane_client.exports import ExportManifest
    from mlplane_client.resources import (
        Approval,
        Asset,
        MetricsVerification,
        Model,
        ModelVersion,
        RuntimeCheck,
        SignatureCompatibility,
        ValidationReport,
    )

    Result = Asset | Model | ModelVersion | Approval | ExportManifest | ValidationReport

EXIT_SERVER_ERROR = 1
EXIT_USAGE = 2

Handler = Callable[["Client", argparse.Namespace], int]

_RELATIVE = re.compile(r"^(?:now)?-(\d+(?:\.\d+)?)([smhd])$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """A bad argument value that argparse could not catch."""


# --- argument parsing -------------------------------------------------------------------
def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (naive = UTC), `now`, or relative to now: `now-24h`, `now-7d`,
    `now-90m`, `now-30s` (`-7d` too, written `--start=-7d` so argparse does not
    take it for an option).

    >>> parse_time("2026-11-20T00:00:00Z").isoformat()
    '2026-11-20T00:00:00+00:00'
    >>> parse_time("now-1d", now=datetime(2026, 11, 20, tzinfo=UTC)).isoformat()
    '2026-11-19T00:00:00+00:00'
    >>> parse_time("-90m", now=datetime(2026, 11, 20, tzinfo=UTC)).isoformat()
    '2026-11-19T22:30:00+00:00'
    """
    now = now or datetime.now(UTC)
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(seconds=float(relative[1]) * _UNIT_SECONDS[relative[2]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not a time: {text!r} (ISO 8601, 'now' or e.g. now-24h)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """`60`, `60s`, `15m`, `1h`, `1d`.

    >>> parse_duration("15m")
    datetime.timedelta(seconds=900)
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"not a duration: {text!r} (e.g. 60s, 15m, 1h)")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def parse_pairs(items: Sequence[str] | None, *, what: str) -> dict[str, str]:
    """`["k=v", …]` as a dict.

    >>> parse_pairs(["auc=0.91", "f1=0.8"], what="metric")
    {'auc': '0.91', 'f1': '0.8'}
    """
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--{what} takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


# --- output -----------------------------------------------------------------------------
def _as_dict(result: Result) -> dict[str, Any]:
    """The proto3 JSON of the message as received, printed the way the gateway
    prints it for REST (fields at their default values included)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(result.raw, always_print_fields_with_no_presence=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _rows(rows: Sequence[tuple[str, object]], indent: str = "") -> None:
    """`key:   value` lines, values lined up in column 18."""
    for key, value in rows:
        print(f"{indent + key + ':':<18}{value}")


def _validation_summary(version: ModelVersion) -> str:
    if version.validation_state.number == 0:
        return "-"
    attached = "with" if version.has_evaluation_set else "no"
    return f"{version.validation_state} ({attached} evaluation set)"


def _show_version(version: ModelVersion) -> None:
    metrics = ", ".join(f"{k}={v:g}" for k, v in sorted(version.metrics.items()))
    labels = ", ".join(f"{k}={v}" for k, v in sorted(version.labels.items()))
    sig = version.signature
    rows = [
        ("model", f"{version.name} ({version.model_id})"),
        ("version", version.version),
        ("status", version.status),
        ("validation", _validation_summary(version)),
        ("description", version.description or "-"),
        ("sha256", version.sha256),
        ("size", f"{version.size_bytes:,} bytes"),
        ("inputs", ", ".join(map(str, sig.inputs)) or "-"),
        ("outputs", ", ".join(map(str, sig.outputs)) or "-"),
        ("producer", f"{sig.producer_name} {sig.producer_version}".strip() or "-"),
        ("metrics", metrics or "-"),
        ("labels", labels or "-"),
        ("training exports", ", ".join(version.training_export_ids) or "-"),
        ("created", f"{_when(version.create_time)} by {version.created_by}"),
    ]
    _rows(rows)


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _why(reason: str, message: str) -> str:
    """`REASON: message`, either part left out when empty."""
    return ": ".join(p for p in (reason, message) if p)


def _show_runtime(runtime: RuntimeCheck | None) -> None:
    if runtime is None:
        _rows([("runtime", "not run yet")])
        return
    outcome = "passed" if runtime.passed else f"FAILED {_why(runtime.reason, runtime.message)}"
    if runtime.onnxruntime_version:
        outcome += f" (onnxruntime {runtime.onnxruntime_version})"
    peak = runtime.peak_memory_bytes
    details: list[tuple[str, object]] = [
        ("load", f"{runtime.load_seconds:.3f} s" if runtime.load_seconds else ""),
        ("latency", runtime.latency if runtime.timed_runs else ""),
        ("peak memory", binary_size(peak) if peak else ""),
        ("outputs", ", ".join(map(str, runtime.outputs))),
        ("non-finite", "NaN or infinity in an output" if runtime.non_finite_output else ""),
        ("limits", str(runtime.limits) if runtime.limits else ""),
        ("network", ", ".join(runtime.network_isolation)),
    ]
    _rows([("runtime", outcome.strip())])
    _rows([(k, v) for k, v in details if v], indent="  ")


def _metrics_absent(report: ValidationReport) -> str:
    """Why a report has no metrics part."""
    if not report.done:
        return "not checked yet"
    if report.runtime is not None and report.runtime.passed:
        return "no evaluation set"
    return "not checked (the model did not run)"


def _show_metrics(metrics: MetricsVerification | None, absent: str) -> None:
    if metrics is None:
        _rows([("metrics", absent)])
        return
    if metrics.reason:
        head = f"FAILED {_why(metrics.reason, metrics.message)}"
    else:
        head = f"{'passed' if metrics.passed else 'FAILED'} on {metrics.rows:,} rows"
        head += f", label column {metrics.label_column!r}, threshold {metrics.threshold:g}"
    _rows([("metrics", head)])
    if metrics.checks:
        _table(
            ("METRIC", "CLAIMED", "VERIFIED", "DIFFERENCE", "TOLERANCE", "STATUS", "NOTE"),
            [
                [
                    c.name,
                    _number(c.claimed),
                    _number(c.verified),
                    _number(c.difference, "+.3g"),
                    _number(c.tolerance, ".3g"),
                    c.status,
                    "" if c.status == "MATCH" else c.message,
                ]
                for c in metrics.checks
            ],
        )
    if metrics.unknown_metrics:
        _rows([("not checked", ", ".join(metrics.unknown_metrics))], indent="  ")


def _show_compatibility(compatibility: SignatureCompatibility | None) -> None:
    if compatibility is None:
        _rows([("compatibility", "-")])
        return
    against = (
        f" with approved v{compatibility.approved_version}"
        if compatibility.approved_version
        else ""
    )
    _rows([("compatibility", f"{compatibility.verdict}{against}")])
    headers = ("DIFFERENCE", "CHANGE", "SIDE", "TENSOR", "OLD", "NEW")
    rows = [
        [kind, d.change, d.side, d.tensor or "-", d.old or "-", d.new or "-"]
        for kind, differences in (
            ("breaking", compatibility.breaking),
            ("non-breaking", compatibility.non_breaking),
        )
        for d in differences
    ]
    if rows:
        _table(headers, rows)


def _show_report(report: ValidationReport) -> None:
    why = _why(report.reason, report.message)
    _rows(
        [
            ("model", f"{report.model_id} v{report.version}"),
            ("state", report.state),
            *([("reason", why)] if why else []),
            ("attempts", report.attempts),
            ("queued", _when(report.create_time)),
            ("started", _when(report.start_time)),
            ("completed", _when(report.complete_time)),
        ]
    )
    _show_runtime(report.runtime)
    _show_metrics(report.metrics, _metrics_absent(report))
    _show_compatibility(report.compatibility)


def _approval_rows(approvals: Sequence[Approval]) -> list[list[object]]:
    return [
        [
            a.approval_id,
            a.model_name,
            a.version,
            a.state,
            a.submitted_by,
            _when(a.submit_time),
            a.decided_by or "-",
        ]
        for a in approvals
    ]


_APPROVAL_HEADERS = (
    "APPROVAL",
    "MODEL",
    "VERSION",
    "STATE",
    "SUBMITTED BY",
    "SUBMITTED",
    "DECIDED",
)


def _emit_approval(args: argparse.Namespace, approval: Approval) -> int:
    if args.json:
        _print_json(_as_dict(approval))
    else:
        _table(_APPROVAL_HEADERS, _approval_rows([approval]))
    return 0


# --- verbs ------------------------------------------------------------------------------
def _assets(client: Client, args: argparse.Namespace) -> int:
    assets = client.list_assets()
    if args.json:
        _print_json([_as_dict(a) for a in assets])
        return 0
    _table(
        ("ASSET", "NAME", "TAGS", "FIRST", "LAST"),
        [
            [
                a.asset_id,
                a.display_name,
                ",".join(a.tag_names),
                _when(a.first_time),
                _when(a.last_time),
            ]
            for a in assets
        ],
    )
    return 0


def _export(client: Client, args: argparse.Namespace) -> int:
    out = Path(args.output)
    kind = out.suffix.lower()
    if kind not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"-o must end in .csv or .parquet, got {out.name!r}")
    start, end = parse_time(args.start), parse_time(args.end)
    tags = [t for t in (args.tags or "").split(",") if t] or None
    resolution = parse_duration(args.resolution) if args.resolution else None
    if kind == ".csv":
        manifest = client.export_history_csv(
            args.asset, start, end, out, tags=tags, resolution=resolution, progress=args.progress
        )
    else:
        import pyarrow.parquet as pq

        exported = client.export_history_arrow(
            args.asset, start, end, tags=tags, resolution=resolution, progress=args.progress
        )
        partial = out.with_name(f".{out.name}.part")
        try:
            pq.write_table(exported.table, partial)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        manifest = exported.manifest
    if args.json:
        _print_json({**_as_dict(manifest), "file": str(out)})
    else:
        for key, value in {**manifest.to_dict(), "file": str(out)}.items():
            shown = ",".join(value) if isinstance(value, list) else value
            if key == "resolution" and value is not None:
                shown = f"{value:g}s"
            print(f"{key + ':':<13}{'-' if shown in (None, '') else shown}")
    return 0


def _upload(client: Client, args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    if args.evaluation_set is not None and not Path(args.evaluation_set).is_file():
        raise UsageError(f"no such file: {args.evaluation_set}")
    if args.label_column is not None and args.evaluation_set is None:
        raise UsageError("--label-column needs --evaluation-set")
    metrics: dict[str, float] = {}
    for key, value in parse_pairs(args.metric, what="metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise UsageError(f"--metric {key}: {value!r} is not a number") from None
    version = client.upload_model(
        args.file,
        args.name,
        args.description,
        metrics=metrics,
        training_exports=args.training_export or [],
        labels=parse_pairs(args.label, what="label"),
        progress=args.progress,
        evaluation_set=args.evaluation_set,
        evaluation_label_column=args.label_column,
    )
    if args.json:
        _print_json(_as_dict(version))
    else:
        _show_version(version)
    return 0


def _submit(client: Client, args: argparse.Namespace) -> int:
    return _emit_approval(
        args, client.submit_for_approval(args.model_id, args.version, args.comment or "")
    )


def _models(client: Client, args: argparse.Namespace) -> int:
    if args.models_command == "list":
        models = client.list_models(args.filter)
        if args.json:
            _print_json([_as_dict(m) for m in models])
        else:
            _table(
                ("MODEL", "NAME", "LATEST", "STATUS", "CREATED BY", "UPDATED"),
                [
                    [
                        m.model_id,
                        m.name,
                        m.latest_version,
                        m.latest_status,
                        m.created_by,
                        _when(m.update_time),
                    ]
                    for m in models
                ],
            )
        return 0
    model = client.get_model(args.model_id)
    if args.json:
        _print_json(_as_dict(model))
        return 0
    for key, value in [
        ("model", model.model_id),
        ("name", model.name),
        ("description", model.description or "-"),
        ("latest version", model.latest_version),
        ("created", f"{_when(model.create_time)} by {model.created_by}"),
        ("updated", _when(model.update_time)),
    ]:
        print(f"{key + ':':<16}{value}")
    return 0


def _versions(client: Client, args: argparse.Namespace) -> int:
    if args.versions_command == "show":
        version = client.get_version(args.model_id, args.version)
        if args.json:
            _print_json(_as_dict(version))
        else:
            _show_version(version)
        return 0
    versions = client.list_versions(args.model_id)
    if args.json:
        _print_json([_as_dict(v) for v in versions])
        return 0
    _table(
        ("VERSION", "STATUS", "SIZE", "SHA256", "CREATED BY", "CREATED"),
        [
            [
                v.version,
                v.status,
                v.size_bytes,
                v.sha256[:16],
                v.created_by,
                _when(v.create_time),
            ]
            for v in versions
        ],
    )
    return 0


def _archive(client: Client, args: argparse.Namespace) -> int:
    version = client.archive(args.model_id, args.version, args.comment)
    if args.json:
        _print_json(_as_dict(version))
    else:
        _show_version(version)
    return 0


def _download(client: Client, args: argparse.Namespace) -> int:
    path = client.download_model(args.model_id, args.version, args.output, progress=args.progress)
    version = client.get_version(args.model_id, args.version)
    if args.json:
        _print_json({"file": str(path), "sha256": version.sha256, "sizeBytes": version.size_bytes})
    else:
        print(f"{path}  {version.size_bytes:,} bytes  sha256 {version.sha256}")
    return 0


def _validation(client: Client, args: argparse.Namespace) -> int:
    """`validation show`: exit 0 whenever the report was read, FAILED included."""
    if args.wait:
        report = client.wait_for_validation(args.model_id, args.version, timeout=args.wait_timeout)
    else:
        report = client.get_validation_report(args.model_id, args.version)
    if args.json:
        _print_json(_as_dict(report))
    else:
        _show_report(report)
    return 0


def _approvals(client: Client, args: argparse.Namespace) -> int:
    command = args.approvals_command
    if command == "list":
        state = None if args.state.upper() == "ANY" else args.state
        approvals = client.list_approvals(state)
        if args.json:
            _print_json([_as_dict(a) for a in approvals])
        else:
            _table(_APPROVAL_HEADERS, _approval_rows(approvals))
        return 0
    if command == "show":
        return _emit_approval(args, client.get_approval(args.approval_id))
    if command == "approve":
        return _emit_approval(args, client.approve(args.approval_id, args.comment or ""))
    return _emit_approval(args, client.reject(args.approval_id, args.comment))


# --- wiring -----------------------------------------------------------------------------
def _runner(handler: Handler) -> Callable[[argparse.Namespace, object], int]:
    def run(args: argparse.Namespace, _settings: object = None) -> int:
        from mlplane_client.client import Client

        if args.progress is None:
            args.progress = sys.stderr.isatty() and not args.json
        try:
            # --url / --token win over MLPLANE_URL / MLPLANE_TOKEN; from_env adds MLPLANE_CA_FILE.
            given = {"url": args.url, "token": args.token}
            with Client.from_env(
                timeout=args.timeout, **{k: v for k, v in given.items() if v}
            ) as client:
                return handler(client, args)
        except MlplaneError as error:
            _print_error(error)
            return EXIT_SERVER_ERROR
        except (UsageError, ValueError, OSError) as error:
            print(f"mlplane: {' '.join(str(error).split())}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("mlplane: interrupted", file=sys.stderr)
            return 130

    return run


def _print_error(error: MlplaneError) -> None:
    """`mlplane: CODE REASON: message` on stderr, then the hint worded for a shell
    (`--token`, `--url`) when there is one."""
    print(f"mlplane: {error.headline}", file=sys.stderr)
    hint = error.hint_for(CLI)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--url", help="gateway: host:port or http(s)://host:port (env MLPLANE_URL; localhost:8080)"
    )
    group.add_argument(
        "--token", help="bearer JWT (env MLPLANE_TOKEN; a dev stack: mlplane token --role ROLE)"
    )
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    group.add_argument("--json", action="store_true", help="proto3 JSON on stdout, for scripts")
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )
    return common


def add_client_commands(commands: Any) -> None:
    """Register the client verbs on the `mlplane` sub-command parser.

    Connection and output options go on the leaf commands (`mlplane models list
    --json`), so a sub-command's defaults never overwrite them.
    """
    common = _common()

    def verb(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, parents=[common]
        )
        parser.set_defaults(func=_runner(handler))
        return parser

    def group(
        name: str, handler: Handler, help_text: str, dest: str
    ) -> Callable[[str, str], argparse.ArgumentParser]:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.set_defaults(func=_runner(handler))
        children = parser.add_subparsers(dest=dest, required=True)

        def child(child_name: str, child_help: str) -> argparse.ArgumentParser:
            leaf: argparse.ArgumentParser = children.add_parser(
                child_name, help=child_help, parents=[common]
            )
            return leaf

        return child

    verb("assets", _assets, "list the assets you may read")

    export = verb("export", _export, "export history to a .csv or .parquet file")
    export.add_argument("asset", help="asset id, e.g. pump-001")
    export.add_argument("--start", required=True, help="ISO time, or relative: now-7d, now-24h")
    export.add_argument(
        "--end", default="now", help="ISO time, 'now' (default) or relative (now-1h)"
    )
    export.add_argument("--tags", help="comma-separated tag names (default: all)")
    export.add_argument("--resolution", help="bucket width for aggregates, e.g. 60s, 15m, 1h")
    export.add_argument("-o", "--output", required=True, help="FILE.csv or FILE.parquet")

    upload = verb("upload", _upload, "upload an ONNX model as the next version of --name")
    upload.add_argument("file", help="the .onnx file")
    upload.add_argument("--name", required=True, help="model name, e.g. pump-bearing-risk")
    upload.add_argument("--description", default="", help="what it is, how it was trained")
    upload.add_argument("--metric", action="append", metavar="K=V", help="repeatable")
    upload.add_argument(
        "--training-export", action="append", metavar="ID", help="export id; repeatable"
    )
    upload.add_argument("--label", action="append", metavar="K=V", help="repeatable")
    upload.add_argument(
        "--evaluation-set",
        metavar="FILE.parquet",
        help="held-out rows (the model's input columns and a label column, at most 64 MiB): "
        "the claimed --metric values are reproduced on them before approval",
    )
    upload.add_argument(
        "--label-column", metavar="NAME", help="the evaluation set's label column (default label)"
    )

    submit = verb("submit", _submit, "submit a version for approval")
    submit.add_argument("model_id")
    submit.add_argument("--version", type=int, help="default: the newest")
    submit.add_argument("--comment", default="", help="note for the reviewer")

    models = group("models", _models, "models of your tenant", "models_command")
    models("list", "list models").add_argument(
        "--filter", help='e.g. \'name = "pump-risk"\' or "status = APPROVED"'
    )
    models("show", "show one model").add_argument("model_id")

    versions = group("versions", _versions, "versions of a model", "versions_command")
    versions("list", "list versions, newest first").add_argument("model_id")
    show_version = versions("show", "show one version")
    show_version.add_argument("model_id")
    show_version.add_argument("version", type=int)

    validation = group(
        "validation", _validation, "validation reports of versions", "validation_command"
    )
    show_report = validation(
        "show",
        "show a version's validation report (exit 0 when read, FAILED included)",
    )
    show_report.epilog = (
        "Exit status 0 whenever the report was read, whatever its state (gate a script on "
        '--json\'s .state == "PASSED"); 1 when the server refuses, or with --wait when '
        "the report is still PENDING or RUNNING after --wait-timeout."
    )
    show_report.add_argument("model_id")
    show_report.add_argument("version", type=int)
    show_report.add_argument(
        "--wait", action="store_true", help="poll until it is PASSED or FAILED"
    )
    show_report.add_argument(
        "--wait-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --wait: exit 1 if still PENDING or RUNNING after this long (default 60)",
    )

    download = verb("download", _download, "download a version's ONNX file (SHA-256 checked)")
    download.add_argument("model_id")
    download.add_argument("version", type=int)
    download.add_argument("-o", "--output", required=True, help="file or directory")

    archive = verb("archive", _archive, "archive a version (approver role; from any state)")
    archive.add_argument("model_id")
    archive.add_argument("version", type=int)
    archive.add_argument("--comment", default="", help="why it is retired")

    approvals = group(
        "approvals", _approvals, "the review queue (approver role)", "approvals_command"
    )
    approvals("list", "list approval requests").add_argument(
        "--state", default="OPEN", help="OPEN (default), APPROVED, REJECTED, CANCELLED or ANY"
    )
    approvals("show", "show one request").add_argument("approval_id")
    approve = approvals("approve", "approve a version under review")
    approve.add_argument("approval_id")
    approve.add_argument("--comment", default="")
    reject = approvals("reject", "reject a version (comment required)")
    reject.add_argument("approval_id")
    reject.add_argument("--comment", required=True, help="why")

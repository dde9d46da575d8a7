"""The mlplane SDK: one `Client` for history exports, the model registry and
approvals, over gRPC through the Envoy gateway (or straight to a service).

Kept whole (over 400 lines): the one `Client` class is the SDK's whole surface, one method per
RPC, so `help(Client)` and this file read the same.

>>> from mlplane_client import Client
>>> c = Client("localhost:8080", token=token)  # doctest: +SKIP
>>> ex = c.export_history("pump-001", "2026-11-01", "2026-11-08", resolution=60)  # doctest: +SKIP
>>> ex.manifest.rows, ex.export_id  # doctest: +SKIP
(100800, '5b0c…')
>>> mv = c.upload_model("model.onnx", "pump-risk", "GBM, 7 days", metrics={"auc": 0.91},
...                     training_exports=[ex])  # doctest: +SKIP
>>> mv  # doctest: +SKIP
ModelVersion(name='pump-risk', version=1, status=PENDING_APPROVAL, model_id='0c6f…', …)
>>> c.submit_for_approval(mv.model_id, mv.version, comment="AUC 0.91").state  # doctest: +SKIP
ApprovalState.OPEN
>>> c.get_version(mv.model_id, 1).status == "IN_REVIEW"  # doctest: +SKIP
True

With an evaluation set (Parquet: the model's input columns and a `label` column)
the registry's validation worker reproduces the claimed metrics; approval needs
its report to have passed:

>>> holdout[FEATURES + ["label"]].to_parquet("holdout.parquet", index=False)  # doctest: +SKIP
>>> mv = c.upload_model("model.onnx", "pump-risk", "GBM", metrics={"roc_auc": 0.91},
...                     evaluation_set="holdout.parquet")  # doctest: +SKIP
>>> report = c.wait_for_validation(mv.model_id, mv.version)  # doctest: +SKIP
>>> report.state, report.metrics.check("roc_auc").verified  # doctest: +SKIP
(ValidationState.PASSED, 0.9102)

Results are typed (`mlplane_client.resources`): statuses are `StrEnum` words,
times timezone-aware UTC `datetime`s, `.to_dict()` gives JSON values and `.raw`
the protobuf message as received.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from google.protobuf.descriptor import FileDescriptor
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import model_registry_pb2_grpc as mpb_grpc
from mlplane.v1 import query_service_pb2 as qpb
from mlplane.v1 import query_service_pb2_grpc as qpb_grpc

from mlplane_client._progress import Progress
from mlplane_client._transport import (
    Closing,
    RetryPolicy,
    Transport,
    clean_token,
    open_channel,
    parse_target,
)
from mlplane_client.enums import ApprovalState
from mlplane_client.errors import IntegrityError, ValidationTimeout
from mlplane_client.exports import (
    ArrowExport,
    ExportManifest,
    HistoryExport,
    ResolutionLike,
    TimeLike,
    read_arrow_export,
    to_duration,
    to_timestamp,
)
from mlplane_client.resources import (
    Approval,
    Asset,
    FailureEvent,
    Model,
    ModelVersion,
    ValidationReport,
)

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

    from mlplane_client._transport import Interceptor

DEFAULT_URL = "localhost:8080"


# What gRPC retries on UNAVAILABLE (`RetryPolicy`, `open_channel`): the reads this client makes,
# each bound to a REST GET. Uploads, submissions, decisions and archives are not here, so gRPC
# never retries them.
def _methods(file: FileDescriptor, service: str, *names: str) -> tuple[str, ...]:
    """`package.Service/Method` of each named method (KeyError for a name it lacks)."""
    found = file.services_by_name[service]
    return tuple(f"{found.full_name}/{found.methods_by_name[name].name}" for name in names)


RETRIED_READS = (
    *_methods(
        qpb.DESCRIPTOR,
        "QueryService",
        "ListAssets",
        "ExportHistory",
        "ExportHistoryCsv",
        "GetExport",
        "ListFailureEvents",
    ),
    *_methods(
        mpb.DESCRIPTOR,
        "ModelRegistry",
        "ListModels",
        "GetModel",
        "ListModelVersions",
        "GetModelVersion",
        "GetValidationReport",
        "DownloadModelVersion",
        "ListApprovals",
        "GetApproval",
    ),
)
UPLOAD_CHUNK_BYTES = 1024 * 1024
_ITEM = TypeVar("_ITEM")
# An evaluation set: a file path, its bytes, or a binary file object read from
# where it stands (and left open).
EvaluationSet = str | os.PathLike[str] | bytes | IO[bytes]


class _Page(Protocol):
    @property
    def next_page_token(self) -> str: ...


_PAGE = TypeVar("_PAGE", bound=_Page)


class HasExportId(Protocol):
    """Anything with an `export_id`: `HistoryExport`, `ArrowExport`, `ExportManifest`."""

    @property
    def export_id(self) -> str: ...


class Client(Closing):
    """A connection to mlplane.

    Args:
        url: `host:port`, `http://host:port` or `https://host:port` of the
            gateway (or of one service, which then serves only its own calls).
        token: the bearer JWT (`mlplane token …` on a dev stack). Blanks and
            newlines around it and a leading `Bearer ` (any case), as pasted
            from a header, are dropped.
        tls: use TLS for a bare `host:port` (a URL's scheme decides otherwise).
        timeout: deadline in seconds of each unary call (lists, gets, submits,
            decisions). `None` = no deadline.
        stream_timeout: total deadline of an export, upload or download;
            `None` (the default) = none, since a month of history takes a while.
        root_certificates: PEM bytes or a file path of the CA to trust with
            TLS (the system roots when omitted).
        retry: how idempotent reads are retried on UNAVAILABLE (see
            `RetryPolicy`); never applied to uploads, submits or decisions.
        page_size: page size requested by the `list_*` calls, which always
            return every page.
        interceptors: gRPC client interceptors to add (metrics, tracing, tests).

    >>> with Client("localhost:8080", token=token) as c:  # doctest: +SKIP
    ...     [a.asset_id for a in c.list_assets()]
    ['pump-001', 'pump-002', ...]
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        tls: bool = False,
        timeout: float | None = 30.0,
        *,
        stream_timeout: float | None = None,
        root_certificates: str | Path | bytes | None = None,
        retry: RetryPolicy | None = None,
        page_size: int = 500,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        self.target = parse_target(url, True if tls else None)
        self._channel = open_channel(
            self.target,
            retry=retry or RetryPolicy(),
            reads=RETRIED_READS,
            root_certificates=root_certificates,
            interceptors=interceptors,
        )
        self._t = Transport(
            self._channel,
            token=clean_token(token),
            timeout=timeout,
            stream_timeout=stream_timeout,
            url=self.target.url,
        )
        self._query = qpb_grpc.QueryServiceStub(self._channel)
        self._models = mpb_grpc.ModelRegistryStub(self._channel)
        self._page_size = page_size

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """A client from `MLPLANE_URL` (default `localhost:8080`), `MLPLANE_TOKEN`
        (the JWT; a pasted `Bearer ` prefix and trailing newline are dropped)
        and, for TLS with a private CA, `MLPLANE_CA_FILE`; keyword arguments
        override them.

        >>> c = Client.from_env()  # doctest: +SKIP
        """
        kwargs.setdefault("url", os.environ.get("MLPLANE_URL") or DEFAULT_URL)
        kwargs.setdefault("token", os.environ.get("MLPLANE_TOKEN") or None)
        if os.environ.get("MLPLANE_CA_FILE"):
            kwargs.setdefault("root_certificates", os.environ["MLPLANE_CA_FILE"])
        return cls(**kwargs)

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __repr__(self) -> str:
        return f"Client({self.target.url!r})"

    # --- paging -------------------------------------------------------------------
    def _all_pages(
        self,
        call: Callable[[str], _PAGE],
        items: Callable[[_PAGE], Iterable[_ITEM]],
    ) -> list[_ITEM]:
        out: list[_ITEM] = []
        token = ""
        while True:
            page = call(token)
            out.extend(items(page))
            token = page.next_page_token
            if not token:
                return out

    # --- history ------------------------------------------------------------------
    def list_assets(self) -> list[Asset]:
        """Every asset the token may read, with its tags and time range.

        >>> [(a.asset_id, a.tag_names) for a in c.list_assets()]  # doctest: +SKIP
        [('pump-001', ('bearing_temp', 'discharge_pressure', 'flow', ...)), ...]
        >>> c.list_assets()[0].last_time  # doctest: +SKIP
        datetime.datetime(2026, 11, 27, 9, 59, 59, tzinfo=datetime.timezone.utc)
        """
        return self._all_pages(
            lambda token: self._t.unary(
                self._query.ListAssets,
                qpb.ListAssetsRequest(page_size=self._page_size, page_token=token),
            ),
            lambda page: map(Asset.from_proto, page.assets),
        )

    def export_history_arrow(
        self,
        asset: str,
        start: TimeLike,
        end: TimeLike,
        tags: Sequence[str] | None = None,
        resolution: ResolutionLike | None = None,
        progress: bool = True,
    ) -> ArrowExport:
        """Stream the history of `asset` in [start, end) into a `pyarrow.Table`.

        Same arguments as `export_history`. The received bytes are checked
        against the manifest's SHA-256 (`IntegrityError` if they differ).
        """
        request = qpb.ExportHistoryRequest(format=qpb.Export.ARROW)
        _fill_export_request(request, asset, start, end, tags, resolution)
        with self._t.server_stream(self._query.ExportHistory, request) as stream:
            first = next(stream, None)
            if first is None or first.WhichOneof("part") != "header":
                raise IntegrityError(
                    "the export stream did not start with its header", reason="INCOMPLETE_STREAM"
                )
            return read_arrow_export(first.header, stream, progress=progress)

    def export_history(
        self,
        asset: str,
        start: TimeLike,
        end: TimeLike,
        tags: Sequence[str] | None = None,
        resolution: ResolutionLike | None = None,
        progress: bool = True,
    ) -> HistoryExport:
        """Stream the history of `asset` in [start, end) into a pandas DataFrame.

        Args:
            asset: asset id, e.g. `pump-001`.
            start, end: `datetime` (naive means UTC) or ISO 8601 string; `start`
                inclusive, `end` exclusive.
            tags: tag names; all of the asset's tags when omitted.
            resolution: bucket width (`timedelta` or seconds) for aggregates
                (`avg`, `min`, `max`, `count` per tag and bucket) instead of
                raw samples.
            progress: show a progress bar (rows so far, MB/s).

        Returns:
            `HistoryExport` with `.frame` (long: `time`, `tag`, `value`,
            `quality`; or `bucket_time`, `tag`, `avg`, `min`, `max`, `count`),
            `.wide()`, `.manifest` and `.export_id`.

        >>> ex = c.export_history("pump-001", "2026-11-20T00:00:00Z",
        ...                       "2026-11-21T00:00:00Z", tags=["flow"])  # doctest: +SKIP
        >>> ex.manifest.rows == len(ex.frame)  # doctest: +SKIP
        True
        """
        arrow = self.export_history_arrow(asset, start, end, tags, resolution, progress)
        return HistoryExport(
            frame=arrow.table.to_pandas(), manifest=arrow.manifest, tags=arrow.tags
        )

    def export_history_csv(
        self,
        asset: str,
        start: TimeLike,
        end: TimeLike,
        path: str | os.PathLike[str],
        tags: Sequence[str] | None = None,
        resolution: ResolutionLike | None = None,
        progress: bool = True,
    ) -> ExportManifest:
        """Stream the export as the server's CSV document into `path` (written
        to a temporary file beside it, checked against the manifest's SHA-256,
        then renamed). Returns the manifest; the file hashes to `sha256`.

        >>> m = c.export_history_csv("pump-001", start, end, "pump-001.csv")  # doctest: +SKIP
        """
        request = qpb.ExportHistoryCsvRequest()
        _fill_export_request(request, asset, start, end, tags, resolution)
        with self._t.server_stream(self._query.ExportHistoryCsv, request) as stream:
            export_id = stream.initial_metadata().get("x-mlplane-export-id", "")

            def check(digest: str, _size: int) -> None:
                trailers = stream.trailing_metadata()
                expected = trailers.get("x-mlplane-export-sha256", "")
                if expected != digest:
                    raise IntegrityError(
                        f"export {export_id}: the CSV hashes to {digest}, "
                        f"the server says {expected or 'nothing'}",
                        reason="SHA256_MISMATCH",
                        metadata={"exportId": export_id},
                    )

            _write_atomically(
                Path(path),
                (body.data for body in stream),
                Progress(progress, desc=f"export {asset}", rows=False),
                check,
            )
        return self.get_export(export_id)

    def get_export(self, export_id: str) -> ExportManifest:
        """The stored manifest of an earlier export.

        >>> c.get_export(ex.export_id).sha256 == ex.manifest.sha256  # doctest: +SKIP
        True
        """
        return ExportManifest.from_proto(
            self._t.unary(self._query.GetExport, qpb.GetExportRequest(export_id=export_id))
        )

    def list_failure_events(
        self, asset: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pd.DataFrame:
        """The asset's recorded failures (training labels), oldest first, as a
        DataFrame with columns `asset_id`, `start_time`, `end_time` (NaT while
        still down), `failure_mode`, `description`. `start`/`end` filter on
        the failure's start time.

        >>> c.list_failure_events("pump-001")[["start_time", "failure_mode"]]  # doctest: +SKIP
        """
        import pandas as pd

        def page(token: str) -> qpb.ListFailureEventsResponse:
            request = qpb.ListFailureEventsRequest(
                asset_id=asset, page_size=self._page_size, page_token=token
            )
            if start is not None:
                request.start_time.CopyFrom(to_timestamp(start))
            if end is not None:
                request.end_time.CopyFrom(to_timestamp(end))
            return self._t.unary(self._query.ListFailureEvents, request)

        events = self._all_pages(page, lambda p: map(FailureEvent.from_proto, p.failure_events))
        columns = ["asset_id", "start_time", "end_time", "failure_mode", "description"]
        frame = pd.DataFrame(
            [(e.asset_id, e.start_time, e.end_time, e.failure_mode, e.description) for e in events],
            columns=columns,
        )
        for column in ("start_time", "end_time"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    # --- models ---------------------------------------------------------------------
    def upload_model(
        self,
        path: str | os.PathLike[str],
        name: str,
        description: str,
        metrics: Mapping[str, float] | None = None,
        training_exports: Iterable[str | HasExportId] | None = None,
        labels: Mapping[str, str] | None = None,
        sha256: str | None = None,
        progress: bool = True,
        evaluation_set: EvaluationSet | None = None,
        evaluation_label_column: str | None = None,
    ) -> ModelVersion:
        """Upload an ONNX file as the next version of model `name`.

        The file is hashed first (unless `sha256` is given) and the digest sent
        as the declared one, then streamed from disk in 1 MiB chunks; the server
        refuses the upload if the bytes it got hash differently. Never retried.

        Args:
            metrics: the claimed metrics; with an evaluation set, the validation
                worker recomputes those it knows (`roc_auc`, `average_precision`,
                `f1`, `accuracy`, `precision`, `recall`, `log_loss`, `rmse`,
                `mse`, `mae`, `r2` and their usual spellings) and compares.
            training_exports: export ids, or the `HistoryExport` /
                `ArrowExport` / `ExportManifest` objects, the model was trained on.
            evaluation_set: held-out rows as Parquet (at most 64 MiB): a path,
                the file's bytes, or a binary file object. The model's input
                columns (a single `[batch, k]` input takes k feature columns in
                training order, or columns named like the inputs) and a label
                column. Streamed in 1 MiB chunks before the model's.
            evaluation_label_column: the label column, when not `label`.

        Returns:
            the new `ModelVersion` (status `PENDING_APPROVAL`, `validation_state`
            `PENDING` until the worker has run: see `wait_for_validation`).

        Raises:
            InvalidArgument: not ONNX, bad name or metadata, digest mismatch, an
                evaluation set that is not Parquet (`EVALUATION_SET_NOT_PARQUET`).
            ResourceExhausted: larger than the server's limit (`MODEL_TOO_LARGE`,
                `EVALUATION_SET_TOO_LARGE`).
            ValueError: an empty evaluation set, or a label column without one.

        >>> mv = c.upload_model("model.onnx", "pump-risk", "GBM on 7 days of pumps",
        ...                     metrics={"auc": 0.91}, training_exports=[ex])  # doctest: +SKIP
        >>> mv.version, mv.sha256 == hashlib.sha256(open("model.onnx", "rb").read()).hexdigest()
        ...  # doctest: +SKIP
        (1, True)
        """
        if evaluation_label_column is not None and evaluation_set is None:
            raise ValueError("evaluation_label_column is only meaningful with an evaluation_set")
        file = Path(path)
        size = file.stat().st_size
        digest = sha256 or _file_sha256(file)
        metadata = mpb.UploadModelMetadata(
            name=name,
            description=description,
            labels=dict(labels or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            training_export_ids=[
                e if isinstance(e, str) else e.export_id for e in training_exports or ()
            ],
            evaluation_label_column=evaluation_label_column or "",
            sha256=digest,
        )
        with contextlib.ExitStack() as opened:
            evaluation: Iterator[bytes] = iter(())
            evaluation_size: int | None = 0
            if evaluation_set is not None:
                evaluation, evaluation_size = _open_evaluation_set(evaluation_set, opened)
            handle = opened.enter_context(file.open("rb"))
            total = None if evaluation_size is None else size + evaluation_size
            bar = opened.enter_context(
                Progress(progress, desc=f"upload {file.name}", total=total, rows=False)
            )
            return ModelVersion.from_proto(
                self._t.client_stream(
                    self._models.UploadModel, _upload_requests(metadata, evaluation, handle, bar)
                )
            )

    def list_models(self, filter: str | None = None) -> list[Model]:
        """Every model of the tenant, by name. `filter`: `name = "pump-risk"`,
        `status = APPROVED` (of the newest version), joined with `AND`.

        >>> [m.name for m in c.list_models('status = PENDING_APPROVAL')]  # doctest: +SKIP
        """
        return self._all_pages(
            lambda token: self._t.unary(
                self._models.ListModels,
                mpb.ListModelsRequest(
                    page_size=self._page_size, page_token=token, filter=filter or ""
                ),
            ),
            lambda page: map(Model.from_proto, page.models),
        )

    def get_model(self, model_id: str) -> Model:
        """One model. `NotFound` (`MODEL_NOT_FOUND`) for an unknown id."""
        return Model.from_proto(
            self._t.unary(self._models.GetModel, mpb.GetModelRequest(model_id=model_id))
        )

    def list_versions(self, model_id: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""
        return self._all_pages(
            lambda token: self._t.unary(
                self._models.ListModelVersions,
                mpb.ListModelVersionsRequest(
                    model_id=model_id, page_size=self._page_size, page_token=token
                ),
            ),
            lambda page: map(ModelVersion.from_proto, page.model_versions),
        )

    def get_version(self, model_id: str, version: int) -> ModelVersion:
        """One version, with its ONNX signature, metrics, lineage and status history.

        >>> v = c.get_version(model_id, 1)  # doctest: +SKIP
        >>> v.status, [str(t) for t in v.signature.inputs]  # doctest: +SKIP
        (VersionStatus.PENDING_APPROVAL, ['float_input: FLOAT[?, 16]'])
        """
        return ModelVersion.from_proto(
            self._t.unary(
                self._models.GetModelVersion,
                mpb.GetModelVersionRequest(model_id=model_id, version=version),
            )
        )

    def get_validation_report(self, model_id: str, version: int) -> ValidationReport:
        """A version's validation report: its `state` (`PENDING`, `RUNNING`,
        `PASSED`, `FAILED` with a `reason`), the ONNX Runtime check (`runtime`:
        load time, P50/P95 latency, peak memory, outputs), the claimed metrics
        reproduced on its evaluation set (`metrics`, None without one) and its
        signature against the approved version (`compatibility`).

        >>> r = c.get_validation_report(mv.model_id, 1)  # doctest: +SKIP
        >>> r.state, r.runtime.latency_p95_ms, [str(x) for x in r.metrics.checks]  # doctest: +SKIP
        (ValidationState.PASSED, 1.9, ['roc_auc: claimed 0.91, verified 0.9102 (…) MATCH'])
        """
        return ValidationReport.from_proto(
            self._t.unary(
                self._models.GetValidationReport,
                mpb.GetValidationReportRequest(model_id=model_id, version=version),
            )
        )

    def wait_for_validation(
        self,
        model_id: str,
        version: int,
        timeout: float | None = 60.0,
        poll: float = 0.5,
    ) -> ValidationReport:
        """Read the report every `poll` seconds until it is `PASSED` or `FAILED`,
        and return it (a `FAILED` report is returned, not raised: look at its
        `reason`). `timeout` None waits for ever.

        Raises:
            ValidationTimeout: still `PENDING` or `RUNNING` after `timeout`
                seconds (a `TimeoutError`; `.report` is the last one read).

        >>> report = c.wait_for_validation(mv.model_id, mv.version, timeout=120)  # doctest: +SKIP
        >>> report.passed, report.reason  # doctest: +SKIP
        (True, '')
        """
        if poll <= 0:
            raise ValueError(f"poll must be positive, got {poll}")
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            report = self.get_validation_report(model_id, version)
            if report.done:
                return report
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValidationTimeout(model_id, version, report, timeout or 0.0)
            time.sleep(min(poll, left))

    def download_model(
        self,
        model_id: str,
        version: int,
        dest_path: str | os.PathLike[str],
        progress: bool = True,
    ) -> Path:
        """Download a version's ONNX file to `dest_path` (a directory gets
        `NAME-vVERSION.onnx` in it). Streams to a temporary file beside the
        destination, checks the SHA-256 against the version, then renames it
        into place: the destination never holds a partial or wrong file.

        >>> c.download_model(mv.model_id, mv.version, "back.onnx")  # doctest: +SKIP
        PosixPath('back.onnx')
        """
        record = self.get_version(model_id, version)
        dest = Path(dest_path)
        if dest.is_dir():
            dest = dest / f"{record.name}-v{record.version}.onnx"
        request = mpb.DownloadModelVersionRequest(model_id=model_id, version=version)
        with self._t.server_stream(self._models.DownloadModelVersion, request) as stream:

            def check(digest: str, size: int) -> None:
                if digest != record.sha256 or size != record.size_bytes:
                    raise IntegrityError(
                        f"model {model_id} v{version}: downloaded {size} bytes hashing to "
                        f"{digest}, the registry recorded {record.size_bytes} bytes "
                        f"hashing to {record.sha256}",
                        reason="SHA256_MISMATCH",
                        metadata={"modelId": model_id, "version": str(version)},
                    )

            _write_atomically(
                dest,
                (body.data for body in stream),
                Progress(
                    progress, desc=f"download {dest.name}", total=record.size_bytes, rows=False
                ),
                check,
            )
        return dest

    # --- approvals ------------------------------------------------------------------
    def submit_for_approval(
        self, model_id: str, version: int | None = None, comment: str = ""
    ) -> Approval:
        """Send a `PENDING_APPROVAL` version (the newest when `version` is None)
        for review: it moves to `IN_REVIEW` and an approval request opens.
        `Conflict` if it was already submitted. Never retried.

        >>> ap = c.submit_for_approval(mv.model_id, comment="AUC 0.91")  # doctest: +SKIP
        >>> ap.state, ap.model_version.status  # doctest: +SKIP
        (ApprovalState.OPEN, VersionStatus.IN_REVIEW)
        """
        return Approval.from_proto(
            self._t.unary(
                self._models.SubmitForApproval,
                mpb.SubmitForApprovalRequest(
                    model_id=model_id, version=version or 0, comment=comment
                ),
            )
        )

    def list_approvals(self, state: ApprovalState | str | None = "OPEN") -> list[Approval]:
        """The review queue (approver role): requests in `state` (an
        `ApprovalState` or its name in any case: `"open"`, `APPROVED`,
        `REJECTED`, `CANCELLED`; any state when None), oldest first.

        >>> [(a.model_name, a.version) for a in approver.list_approvals("open")]  # doctest: +SKIP
        [('pump-risk', 1)]
        """
        wanted = ApprovalState.parse(state) if state else ApprovalState.STATE_UNSPECIFIED
        return self._all_pages(
            lambda token: self._t.unary(
                self._models.ListApprovals,
                mpb.ListApprovalsRequest(
                    state=mpb.Approval.State.Value(wanted.value),
                    page_size=self._page_size,
                    page_token=token,
                ),
            ),
            lambda page: map(Approval.from_proto, page.approvals),
        )

    def get_approval(self, approval_id: str) -> Approval:
        """One approval request, with the version under review."""
        return Approval.from_proto(
            self._t.unary(
                self._models.GetApproval,
                mpb.GetApprovalRequest(approval_id=approval_id),
            )
        )

    def approve(self, approval_id: str, comment: str = "") -> Approval:
        """Approve (approver role; never the version's uploader or submitter:
        `PermissionDenied`). Never retried.

        >>> approver.approve(ap.approval_id, comment="ok").state  # doctest: +SKIP
        ApprovalState.APPROVED
        """
        return Approval.from_proto(
            self._t.unary(
                self._models.ApproveModelVersion,
                mpb.ApproveModelVersionRequest(approval_id=approval_id, comment=comment),
            )
        )

    def reject(self, approval_id: str, comment: str) -> Approval:
        """Reject, saying why (a comment is required). Never retried."""
        return Approval.from_proto(
            self._t.unary(
                self._models.RejectModelVersion,
                mpb.RejectModelVersionRequest(approval_id=approval_id, comment=comment),
            )
        )

    def archive(self, model_id: str, version: int, comment: str = "") -> ModelVersion:
        """Retire a version (approver role); an open review of it is cancelled."""
        return ModelVersion.from_proto(
            self._t.unary(
                self._models.ArchiveModelVersion,
                mpb.ArchiveModelVersionRequest(model_id=model_id, version=version, comment=comment),
            )
        )


def _fill_export_request(
    request: qpb.ExportHistoryRequest | qpb.ExportHistoryCsvRequest,
    asset: str,
    start: TimeLike,
    end: TimeLike,
    tags: Sequence[str] | None,
    resolution: ResolutionLike | None,
) -> None:
    request.asset_id = asset
    request.start_time.CopyFrom(to_timestamp(start))
    request.end_time.CopyFrom(to_timestamp(end))
    request.tags.extend(tags or ())
    if resolution is not None:
        request.resolution.CopyFrom(to_duration(resolution))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _open_evaluation_set(
    source: EvaluationSet, opened: contextlib.ExitStack
) -> tuple[Iterator[bytes], int | None]:
    """The evaluation set's bytes in chunks of at most `UPLOAD_CHUNK_BYTES`, and
    its size when known. A path is opened on `opened`; a file object is read from
    where it stands and left open. The first chunk is read now, so an empty set
    or a text-mode file fails here rather than inside the call."""
    size: int | None = None
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        size = view.nbytes
        chunks: Iterator[bytes] = (
            bytes(view[i : i + UPLOAD_CHUNK_BYTES]) for i in range(0, size, UPLOAD_CHUNK_BYTES)
        )
    elif isinstance(source, str | os.PathLike):
        handle = opened.enter_context(Path(source).open("rb"))  # noqa: SIM115 (ExitStack)
        size = os.fstat(handle.fileno()).st_size
        chunks = _read_chunks(handle)
    else:
        chunks = _read_chunks(source)
    first = next(chunks, b"")
    if not isinstance(first, bytes):
        raise TypeError("evaluation_set: open the file in binary mode ('rb')")
    if not first:
        raise ValueError("the evaluation set is empty")
    return itertools.chain([first], chunks), size


def _read_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(UPLOAD_CHUNK_BYTES):
        yield chunk


def _upload_requests(
    metadata: mpb.UploadModelMetadata,
    evaluation: Iterable[bytes],
    handle: IO[bytes],
    bar: Progress,
) -> Iterator[mpb.UploadModelRequest]:
    """Metadata, then the evaluation set's chunks, then the model's."""
    yield mpb.UploadModelRequest(metadata=metadata)
    for piece in evaluation:
        yield mpb.UploadModelRequest(evaluation_set_chunk=piece)
        bar.update(nbytes=len(piece))
    while chunk := handle.read(UPLOAD_CHUNK_BYTES):
        yield mpb.UploadModelRequest(chunk=chunk)
        bar.update(nbytes=len(chunk))


def _write_atomically(
    dest: Path,
    chunks: Iterable[bytes],
    bar: Progress,
    check: Callable[[str, int], None],
) -> None:
    """Write `chunks` to a temporary file beside `dest`, let `check(sha256, size)`
    veto it, then rename it over `dest`. Nothing is left behind on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed or removed below)
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    )
    try:
        with bar, handle:
            digest, size = hashlib.sha256(), 0
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                bar.update(nbytes=len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
        check(digest.hexdigest(), size)
        os.replace(handle.name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise

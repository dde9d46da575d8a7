"""The validation worker: takes versions from the queue and writes their reports.

For each job (services/validation/queue.py) it downloads the model (and the evaluation set
uploaded with it) from the object store into a private folder, then:

1. runs the ONNX Runtime check in a sandboxed child (runtime_check.py);
2. if an evaluation set came with the version and the check passed, reproduces the claimed
   metrics on it in another sandboxed child (evaluation_run.py);
3. compares the signature with the model's approved version (compatibility.py; in this
   process: it reads only the stored signatures);

and records the report: PASSED when the model ran and every claimed metric it could check
matched, else FAILED with the first reason. The compatibility verdict is evidence for the
approver, not a failure: a new major version may break its callers on purpose.

The worker itself never loads a model: every untrusted byte is read in a child with limits.
Its loop: claim, work, finish; when the queue is empty it waits for a notification (uploads
`NOTIFY` in the transaction that queues the job) or `poll_seconds`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grpc import aio
from prometheus_client import Counter, Gauge, Histogram

from services.common.errors import ServiceError
from services.common.metrics import ServerMetrics
from services.common.server import ServiceSpec
from services.common.settings import Settings
from services.models.object_store import ObjectStore, open_store
from services.models.repositories.database import lease_owner
from services.models.repository import VALIDATION_CHANNEL, RegistryRepository
from services.models.service import registry_repository
from services.validation.compatibility import SignatureFormatError, compare_signatures
from services.validation.evaluation_run import run_evaluation
from services.validation.queue import WORKER_LOST, Job, JobQueue
from services.validation.runtime_check import run_runtime_check
from services.validation.sandbox import SandboxLimits
from services.validation.scratch import scratch_prefix, sweep_abandoned

log = logging.getLogger("mlplane.validation.worker")

SERVICE_NAME = "mlplane.validation.Worker"
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
DOWNLOAD_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str
    message: str
    report: dict[str, Any]


class ValidationMetrics:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.completed = Counter(
            "mlplane_validations_total",
            "Validation reports written, by state and failure reason.",
            ["state", "reason"],
            registry=metrics.registry,
        )
        self.duration = Histogram(
            "mlplane_validation_seconds",
            "Time from claiming a job to writing its report.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=metrics.registry,
        )
        self.open_jobs = Gauge(
            "mlplane_validation_open_jobs",
            "Versions waiting for or under validation (the whole queue, as this worker sees it).",
            registry=metrics.registry,
        )
        self.oldest_open_job_age = Gauge(
            "mlplane_validation_oldest_open_job_age_seconds",
            "Age of the oldest version waiting for or under validation (0 when none).",
            registry=metrics.registry,
        )


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        store: ObjectStore,
        settings: Settings,
        *,
        metrics: ValidationMetrics | None = None,
        scratch_root: Path | None = None,
    ) -> None:
        self._queue = queue
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._scratch_root = scratch_root
        self.limits = SandboxLimits(
            memory_bytes=settings.validation_memory_bytes,
            cpu_seconds=settings.validation_cpu_seconds,
            wall_seconds=settings.validation_wall_seconds,
        )
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Look at the queue now (a notification came)."""
        self._wake.set()

    async def run(self) -> None:
        """Work until cancelled, `validation_concurrency` jobs at a time."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._settings.validation_concurrency):
                group.create_task(self._loop())
            if self._metrics is not None:
                group.create_task(self._measure(self._metrics))

    async def _measure(self, metrics: ValidationMetrics) -> None:
        """The queue's gauges, every poll interval (one small query)."""
        while True:
            try:
                jobs, age = await self._queue.backlog()
            except Exception:  # the database is down: the last figures stay
                log.debug("could not measure the validation queue", exc_info=True)
            else:
                metrics.open_jobs.set(jobs)
                metrics.oldest_open_job_age.set(age)
            await asyncio.sleep(self._settings.validation_poll_seconds)

    async def _loop(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except ServiceError as exc:  # the database is down: try again later
                log.warning("validation queue unavailable: %s", exc.message)
                worked = False
            except Exception:
                # Whatever it was, the loop must outlive it: a worker whose loop died would
                # still answer health checks and never validate again. The job, if one was
                # claimed, is taken again when its lease runs out.
                log.exception("validation loop error; carrying on")
                worked = False
            if not worked:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.validation_poll_seconds
                    )

    async def run_once(self) -> bool:
        """Claim one job and finish it; False when the queue had none."""
        job = await self._queue.claim()
        if job is None:
            return False
        started = time.monotonic()
        renewal = asyncio.create_task(self._renew(job))
        try:
            outcome = await self._validate(job)
        except asyncio.CancelledError:
            renewal.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(self._queue.release(job))
            raise
        finally:
            renewal.cancel()
        written = await self._queue.finish(
            job,
            state=outcome.state,
            reason=outcome.reason,
            message=outcome.message,
            report=outcome.report,
        )
        if not written:
            log.warning(
                "lost the lease of %s before finishing; its report was dropped", job.resource
            )
            return True
        log.info(
            "validated",
            extra={"resource": job.resource, "state": outcome.state, "reason": outcome.reason},
        )
        if self._metrics is not None:
            self._metrics.completed.labels(outcome.state, outcome.reason).inc()
            self._metrics.duration.observe(time.monotonic() - started)
        return True

    async def _renew(self, job: Job) -> None:
        every = self._settings.validation_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await self._queue.renew(job):
                    return
            except ServiceError:
                log.warning("could not renew the lease of %s", job.resource)

    async def _validate(self, job: Job) -> Outcome:
        if job.attempts > self._settings.validation_max_attempts:
            return Outcome(
                "FAILED",
                WORKER_LOST,
                f"no worker finished this version in {job.attempts - 1} attempts (each stopped "
                "without a report: the model may crash or exhaust the worker itself)",
                {},
            )
        compatibility = await self._compatibility(job)
        async with self._folder() as folder:
            model = folder / "model.onnx"
            evaluation = folder / "evaluation.parquet" if job.evaluation_key else None
            try:
                await self._download(job.storage_key, model)
                if job.evaluation_key and evaluation is not None:
                    await self._download(job.evaluation_key, evaluation)
            except _StoreDown as exc:
                return Outcome(
                    "FAILED",
                    STORE_UNAVAILABLE,
                    f"the object store could not be read ({exc}); upload the version again "
                    "or ask an operator",
                    {"compatibility": compatibility},
                )
            runtime = await asyncio.to_thread(
                run_runtime_check, model, self.limits, scratch_root=self._scratch_root
            )
            report: dict[str, Any] = {
                "runtime": runtime.to_dict(),
                "compatibility": compatibility,
            }
            if not runtime.passed:
                return Outcome(
                    "FAILED", runtime.reason or "RUNTIME_CHECK_FAILED", runtime.message, report
                )
            if evaluation is None:
                return Outcome("PASSED", "", "", report)
            metrics = await asyncio.to_thread(
                run_evaluation,
                model,
                evaluation,
                signature=job.signature,
                claimed=job.metrics,
                label_column=job.evaluation_label_column or "label",
                limits=self.limits,
                scratch_root=self._scratch_root,
            )
            report["metrics"] = metrics
            if metrics.get("reason"):
                return Outcome(
                    "FAILED", str(metrics["reason"]), str(metrics.get("message", "")), report
                )
            return Outcome("PASSED", "", "", report)

    async def _compatibility(self, job: Job) -> dict[str, Any]:
        approved = await self._queue.approved_signature(job)
        try:
            result = compare_signatures(
                job.signature,
                approved.signature if approved else None,
                approved_version=approved.version if approved else None,
            )
        except SignatureFormatError as exc:
            return {"verdict": "VERDICT_UNSPECIFIED", "message": str(exc)}
        return result.to_dict()

    @contextlib.asynccontextmanager
    async def _folder(self) -> AsyncIterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix=scratch_prefix("validation"), dir=self._scratch_root))
        try:
            yield folder
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _download(self, key: str, path: Path) -> None:
        """Copy an object to `path`, retrying a store that fails (with backoff)."""
        retries = self._settings.validation_store_retries
        for attempt in range(retries + 1):
            try:
                await self._copy(key, path)
                return
            except (ServiceError, OSError) as exc:
                if attempt == retries:
                    message = exc.message if isinstance(exc, ServiceError) else type(exc).__name__
                    raise _StoreDown(message) from exc
                log.warning("object store read failed (%s), retrying", key)
                await asyncio.sleep(0.5 * 2**attempt)

    async def _copy(self, key: str, path: Path) -> None:
        with path.open("wb") as file:
            async for piece in self._store.read(key):
                await asyncio.to_thread(file.write, piece)


class _StoreDown(Exception):
    pass


async def listen(repo: RegistryRepository, worker: Worker, every: float) -> None:
    """Wake the worker on each upload's NOTIFY; reconnect when the connection is lost."""
    while True:
        try:
            async with repo.listening(VALIDATION_CHANNEL, worker.nudge) as alive:
                worker.nudge()  # jobs queued while no one listened
                while True:
                    await asyncio.sleep(every)
                    await alive()
        except ServiceError:
            await asyncio.sleep(every)
        except Exception:
            log.exception("lost the notification connection; listening again")
            await asyncio.sleep(every)


def validation_spec(settings: Settings) -> ServiceSpec:
    """The worker as a process the common server runs: health checks (for probes and
    `mlplane up`) and /metrics, and the worker's tasks beside them."""

    async def register(server: aio.Server, metrics: ServerMetrics) -> Callable[[], Awaitable[None]]:
        # Folders a killed worker could not remove (its download, its child's scratch).
        await asyncio.to_thread(sweep_abandoned)
        repo = registry_repository(settings, metrics)
        store = await open_store(settings)
        owner = lease_owner()
        worker = Worker(
            JobQueue(repo, owner, settings.validation_lease_seconds),
            store,
            settings,
            metrics=ValidationMetrics(metrics),
        )
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(worker.run()),
            loop.create_task(listen(repo, worker, settings.validation_poll_seconds)),
        ]
        log.info(
            "validation worker started", extra={"owner": owner, "limits": asdict(worker.limits)}
        )

        async def cleanup() -> None:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await store.close()
            await repo.close()

        return cleanup

    return ServiceSpec(name=SERVICE_NAME, register=register, grpc_service=False)

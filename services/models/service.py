"""Wiring of the ModelRegistry: database engine, object store, domain, servicer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from grpc import aio
from mlplane.v1 import model_registry_pb2, model_registry_pb2_grpc

from services.common.db import create_engine, pool_usage
from services.common.metrics import ApprovalMetrics, OutboxMetrics, ServerMetrics, UploadMetrics
from services.common.pagination import PageTokens, ensure_page_token_key
from services.common.server import ServiceSpec
from services.common.settings import Settings
from services.models.approvals import Approvals
from services.models.catalog import Catalog
from services.models.links import ModelLinks
from services.models.object_store import ObjectStore, open_store
from services.models.orphans import SweepResult, sweep_orphans, sweep_periodically
from services.models.outbox_relay import OutboxRelay
from services.models.repository import RegistryRepository
from services.models.servicer import ModelRegistryServicer
from services.models.upload import Uploader

SERVICE_NAME = model_registry_pb2.DESCRIPTOR.services_by_name["ModelRegistry"].full_name


def models_spec(settings: Settings) -> ServiceSpec:
    async def register(server: aio.Server, metrics: ServerMetrics) -> Callable[[], Awaitable[None]]:
        repo = registry_repository(settings, metrics)
        store = await open_store(settings)
        uploader = Uploader(repo, store, max_bytes=settings.max_model_bytes)
        key = ensure_page_token_key(settings)
        pages = PageTokens(key)
        links = ModelLinks(key, timedelta(seconds=settings.export_link_seconds))
        catalog = Catalog(repo, store, pages)
        relay = OutboxRelay(repo, settings, metrics=OutboxMetrics(metrics.registry))
        relay.start()
        approvals = Approvals(
            repo, pages, on_event=relay.nudge, metrics=ApprovalMetrics(metrics.registry)
        )
        sweeper = _start_orphan_sweep(settings, store, repo)
        model_registry_pb2_grpc.add_ModelRegistryServicer_to_server(
            ModelRegistryServicer(
                uploader, catalog, approvals, links, uploads=UploadMetrics(metrics.registry)
            ),
            server,
        )

        async def cleanup() -> None:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await relay.stop()
            await store.close()
            await repo.close()

        return cleanup

    return ServiceSpec(name=SERVICE_NAME, register=register)


def registry_repository(settings: Settings, metrics: ServerMetrics) -> RegistryRepository:
    """The registry's database (its pool watched by the process's metrics): the models
    service's and the validation worker's."""
    if not settings.registry_database_url:
        raise RuntimeError("MLPLANE_REGISTRY_DATABASE_URL is not set (mlplane up sets it)")
    engine = create_engine(settings.registry_database_url, settings)
    metrics.pools.watch("registry", lambda: pool_usage(engine, settings.db_pool_size))
    return RegistryRepository(engine)


def _start_orphan_sweep(
    settings: Settings, store: ObjectStore, repo: RegistryRepository
) -> asyncio.Task[None] | None:
    if settings.orphan_sweep_seconds == 0:
        return None
    min_age = timedelta(seconds=settings.orphan_min_age_seconds)

    async def sweep() -> SweepResult:
        return await sweep_orphans(store, repo.named_keys, min_age=min_age)

    every = timedelta(seconds=settings.orphan_sweep_seconds)
    return asyncio.get_running_loop().create_task(sweep_periodically(sweep, every))

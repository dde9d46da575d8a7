"""Wiring of the QueryService: database pool, asset catalog, export pipeline, servicer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from grpc import aio
from mlplane.v1 import query_service_pb2, query_service_pb2_grpc

from services.common.metrics import ExportMetrics, ServerMetrics
from services.common.pagination import PageTokens, ensure_page_token_key
from services.common.server import ServiceSpec
from services.common.settings import Settings
from services.query.asset_catalog import AssetCatalog
from services.query.export_pipeline import ExportPipeline
from services.query.links import ExportLinks
from services.query.servicer import QueryServicer
from services.query.store import HistoryStore

SERVICE_NAME = query_service_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name


def query_spec(settings: Settings) -> ServiceSpec:
    async def register(server: aio.Server, metrics: ServerMetrics) -> Callable[[], Awaitable[None]]:
        if not settings.query_database_url:
            raise RuntimeError("MLPLANE_QUERY_DATABASE_URL is not set (mlplane up sets it)")
        store = await HistoryStore.open(
            settings.query_database_url,
            pool_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout=settings.query_statement_timeout_seconds,
        )
        metrics.pools.watch("query", store.pool_usage)
        key = ensure_page_token_key(settings)
        pages = PageTokens(key)
        catalog = AssetCatalog(store, pages)
        exports = ExportPipeline(
            store, catalog, settings, pages, metrics=ExportMetrics(metrics.registry)
        )
        links = ExportLinks(key, timedelta(seconds=settings.export_link_seconds))
        query_service_pb2_grpc.add_QueryServiceServicer_to_server(
            QueryServicer(catalog, exports, settings, links), server
        )

        async def cleanup() -> None:
            await exports.close()
            await store.close()

        return cleanup

    return ServiceSpec(name=SERVICE_NAME, register=register)

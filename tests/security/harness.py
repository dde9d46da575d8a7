"""Calling any RPC three ways (Envoy REST, Envoy gRPC, the service directly) and
watching the database and the object store for changes.

Every call is reduced to an `Answer`: the HTTP status (a gRPC code is mapped the way
Envoy's transcoder maps it) and the text the caller got back, so one expectation holds
for all three paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from mlplane.v1 import model_registry_pb2, query_service_pb2

from services.common.errors import error_info_from_trailers
from tests.stack_runner import RunningStack

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "generated" / "mlplane.pb"
PACKAGE = "mlplane.v1"

REST = "rest"
GATEWAY_GRPC = "gateway-grpc"
DIRECT_GRPC = "direct-grpc"
PATHS = (REST, GATEWAY_GRPC, DIRECT_GRPC)

# Envoy's gRPC -> HTTP mapping (DESIGN.md section 4), applied to the gRPC paths.
HTTP_OF_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def all_rpcs() -> list[str]:
    """Every RPC of the two services as `Service/Method`, from the committed descriptor set."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    return sorted(
        f"{service.name}/{method.name}"
        for file in fds.file
        if file.package == PACKAGE
        for service in file.service
        for method in service.method
    )


def method_descriptor(rpc: str) -> MethodDescriptor:
    service, method = rpc.split("/")
    for module in (query_service_pb2, model_registry_pb2):
        services = module.DESCRIPTOR.services_by_name
        if service in services:
            found: MethodDescriptor = services[service].methods_by_name[method]
            return found
    raise KeyError(rpc)


def grpc_path(rpc: str) -> str:
    return f"/{PACKAGE}.{rpc}"


def message_class(full_name: str) -> type[Message]:
    pool: DescriptorPool = query_service_pb2.DESCRIPTOR.pool
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


@dataclass(frozen=True)
class Rest:
    """One REST request: method, path (already percent-encoded), query, body."""

    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    files: dict[str, tuple[str, bytes]] | None = None
    data: dict[str, str] | None = None


@dataclass(frozen=True)
class Sample:
    """A request for one RPC, as gRPC message(s) and as REST."""

    messages: list[Message]  # one, or the stream of a client-streaming RPC
    rest: Rest


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    grpc_code: grpc.StatusCode | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The ErrorInfo reason: the REST body's first detail, or gRPC's status details.
    reason: str = ""

    def __str__(self) -> str:
        code = f" {self.grpc_code.name}" if self.grpc_code else ""
        return f"{self.status}{code}: {self.text[:300]}"


def bearer(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token is not None else []


class Caller:
    """One HTTP client and one gRPC channel per target, reused by every case."""

    def __init__(self, stack: RunningStack) -> None:
        self.http = httpx.Client(base_url=stack.gateway_url, timeout=30, trust_env=False)
        options = [("grpc.enable_http_proxy", 0)]
        self.channels = {
            GATEWAY_GRPC: {
                service: grpc.insecure_channel(stack.gateway_target, options=options)
                for service in ("QueryService", "ModelRegistry")
            },
            DIRECT_GRPC: {
                "QueryService": grpc.insecure_channel(
                    stack.service_target("query"), options=options
                ),
                "ModelRegistry": grpc.insecure_channel(
                    stack.service_target("models"), options=options
                ),
            },
        }

    def close(self) -> None:
        self.http.close()
        for channels in self.channels.values():
            for channel in channels.values():
                channel.close()

    def call(
        self,
        path: str,
        rpc: str,
        sample: Sample,
        token: str | None,
        extra_metadata: list[tuple[str, str]] | None = None,
    ) -> Answer:
        if path == REST:
            headers = dict(bearer(token) + (extra_metadata or []))
            return self.rest(sample.rest, headers)
        return self.grpc(path, rpc, sample.messages, bearer(token) + (extra_metadata or []))

    def rest(self, rest: Rest, headers: dict[str, str]) -> Answer:
        response = self.http.request(
            rest.method,
            rest.path,
            params=list(rest.params) or None,
            json=rest.json,
            files=rest.files,
            data=rest.data,
            headers=headers,
        )
        reason = ""
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            details = response.json().get("details") or [{}]
            reason = details[0].get("reason", "")
        return Answer(
            response.status_code, response.text, headers=dict(response.headers), reason=reason
        )

    def grpc(
        self, path: str, rpc: str, messages: list[Message], metadata: list[tuple[str, str]]
    ) -> Answer:
        method = method_descriptor(rpc)
        channel = self.channels[path][rpc.split("/")[0]]
        md: tuple[tuple[str, str | bytes], ...] = tuple(metadata)
        output = message_class(method.output_type.full_name)
        kwargs: dict[str, Any] = {
            "request_serializer": lambda m: m.SerializeToString(),
            "response_deserializer": output.FromString,
        }
        try:
            if method.client_streaming:
                call = channel.stream_unary(grpc_path(rpc), **kwargs)
                replies: list[Message] = [call(iter(messages), metadata=md, timeout=30)]
            elif method.server_streaming:
                stream = channel.unary_stream(grpc_path(rpc), **kwargs)
                replies = list(stream(messages[0], metadata=md, timeout=30))
            else:
                unary = channel.unary_unary(grpc_path(rpc), **kwargs)
                replies = [unary(messages[0], metadata=md, timeout=30)]
        except grpc.RpcError as error:
            code = error.code()
            info = error_info_from_trailers(error.trailing_metadata())  # type: ignore[attr-defined]
            return Answer(
                HTTP_OF_GRPC.get(code, 500),
                str(error.details()),
                code,
                reason=info.reason if info is not None else "",
            )
        text = "\n".join(json_format.MessageToJson(reply) for reply in replies)
        return Answer(200, text, grpc.StatusCode.OK)


# --------------------------------------------------------------------------- state


TABLES_BY_CONTENT = (
    "models",
    "model_names",
    "model_versions",
    "model_version_status_history",
    "approval_requests",
    "exports",
)
# Append-only (or effectively so): count and highest key are enough, and stay cheap
# however long the session's audit log grows. What the validation worker writes on its own
# (the report of a version uploaded earlier, its event, its audit entry) lands whenever the
# worker gets to it: not a change the request under test made, so it is left out.
TABLES_BY_TAIL = (
    ("audit_log", "audit_pk", "subject <> 'mlplane-validation-worker'"),
    ("outbox_events", "event_pk", "event_type <> 'validation.completed'"),
)


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, tuple[int, str]]
    audit: list[tuple[str, str, str, str]]  # new audit rows since the last snapshot
    objects: tuple[tuple[str, int, int], ...]


class StateWatch:
    """Snapshots of the registry tables and of the folder object store."""

    def __init__(self, stack: RunningStack) -> None:
        self._loop = asyncio.new_event_loop()
        self._conn: asyncpg.Connection = self._loop.run_until_complete(
            asyncpg.connect(stack.admin_dsn())
        )
        self._store = stack.settings.object_store_dir

    def close(self) -> None:
        self._loop.run_until_complete(self._conn.close())
        self._loop.close()

    def _run(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = self._loop.run_until_complete(self._conn.fetch(query, *args))
        return rows

    def tables(self) -> dict[str, tuple[int, str]]:
        digest = "coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
        parts = [
            f"SELECT '{table}', count(*), {digest} FROM {table} t"  # noqa: S608 (fixed names)
            for table in TABLES_BY_CONTENT
        ] + [
            f"SELECT '{table}', count(*), coalesce(max({key})::text, '') FROM {table}"  # noqa: S608
            f" WHERE {mine}"
            for table, key, mine in TABLES_BY_TAIL
        ]
        rows = self._run(" UNION ALL ".join(parts))
        return {row[0]: (int(row[1]), str(row[2])) for row in rows}

    def audit_since(self, audit_pk: int) -> list[tuple[str, str, str, str]]:
        worker_excluded = TABLES_BY_TAIL[0][2]
        query = f"SELECT tenant_id, subject, action, outcome FROM audit_log WHERE audit_pk > $1 AND {worker_excluded} ORDER BY audit_pk"  # noqa: E501, S608 (a fixed clause)
        rows = self._run(query, audit_pk)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def objects(self) -> tuple[tuple[str, int, int], ...]:
        """Every stored file with its size and modification time."""
        found: list[tuple[str, int, int]] = []
        if self._store.exists():
            for item in sorted(self._store.rglob("*")):
                if item.is_file():
                    stat = item.stat()
                    found.append(
                        (str(item.relative_to(self._store)), stat.st_size, stat.st_mtime_ns)
                    )
        return tuple(found)

    def unchanged(self, action: Callable[[], None]) -> list[str]:
        """Run `action`; return every change it made to the tables and the store."""
        before_tables, before_objects = self.tables(), self.objects()
        action()
        after_tables, after_objects = self.tables(), self.objects()
        changes = [
            f"{table}: {before_tables[table]} -> {after_tables[table]}"
            for table in before_tables
            if before_tables[table] != after_tables[table]
        ]
        if before_objects != after_objects:
            changes.append(f"object store: {set(after_objects) ^ set(before_objects)}")
        if before_tables["audit_log"] != after_tables["audit_log"]:
            last = before_tables["audit_log"][1]
            changes.append(f"new audit rows: {self.audit_since(int(last or 0))}")
        return changes

    def call_unchanged(self, call: Callable[[], Answer]) -> tuple[Answer, list[str]]:
        answers: list[Answer] = []
        changes = self.unchanged(lambda: answers.append(call()))
        return answers[0], changes

"""libpq DSNs with TLS parameters (`?sslmode=require`, as RDS users write them) work on every
path that connects: the SQLAlchemy engines (ModelRegistry, `mlplane db setup`), which hand
asyncpg keyword arguments, and asyncpg's own DSN parser (QueryService, grants, audit).

The real connections go to the embedded PostgreSQL (a unix socket only) through a TCP proxy
on loopback that answers PostgreSQL's SSLRequest itself: 'N' (no TLS), or 'S' and a TLS
handshake with a certificate made here, so every sslmode can be seen doing what libpq's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import io
import ipaddress
import shutil
import ssl
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.db import SSL_MODES, async_url, create_engine, tls_connect_args
from services.common.settings import Settings
from services.db.setup import (
    QUERY_ROLE,
    REGISTRY_ROLE,
    RoleCredentials,
    SetupError,
    role_dsn,
    run_setup,
)
from services.stack.postgres import PORT, EmbeddedPostgres
from tests.conftest import private_tmp, starts_servers

PASSWORD = "s3cret-password-of-admin"

# --- the translation --------------------------------------------------------------------


def _asyncpg_kwargs(dsn: str) -> dict[str, object]:
    """What SQLAlchemy's asyncpg dialect would pass to asyncpg.connect() for this DSN."""
    engine = create_async_engine(async_url(dsn), connect_args=tls_connect_args(dsn))
    try:
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.sync_engine.dispose()
    return {**kwargs, **tls_connect_args(dsn)}


@pytest.mark.parametrize("mode", SSL_MODES)
def test_sslmode_becomes_asyncpgs_ssl(mode: str) -> None:
    dsn = f"postgresql://app:{PASSWORD}@db.example.com:5432/mlplane?sslmode={mode}"
    url = make_url(async_url(dsn))
    assert url.drivername == "postgresql+asyncpg"
    assert dict(url.query) == {"ssl": mode}
    assert (url.host, url.port, url.database, url.password) == (
        "db.example.com",
        5432,
        "mlplane",
        PASSWORD,
    )
    assert tls_connect_args(dsn) == {}


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:{PASSWORD}@db.example.com/mlplane?sslmode=require",
        f"postgres://app:{PASSWORD}@db.example.com/mlplane?sslmode=verify-full"
        "&sslrootcert=/etc/mlplane/ca/rds-global-bundle.pem",
        f"postgresql+asyncpg://app:{PASSWORD}@db.example.com/mlplane?sslmode=verify-ca"
        "&sslrootcert=/ca.pem&sslcert=/tls/client.crt&sslkey=/tls/client.key&sslcrl=/ca.crl",
        f"postgresql://app:{PASSWORD}@/mlplane?host=/run/postgresql&port=5432&sslmode=disable",
        f"postgresql://app:{PASSWORD}@db.example.com/mlplane",
    ],
)
def test_every_argument_the_engine_passes_is_one_asyncpg_takes(dsn: str) -> None:
    accepted = set(inspect.signature(asyncpg.connect).parameters)
    kwargs = _asyncpg_kwargs(dsn)
    assert set(kwargs) <= accepted, set(kwargs) - accepted


def test_certificate_files_reach_asyncpg_in_a_dsn_of_their_own() -> None:
    dsn = (
        f"postgresql://app:{PASSWORD}@db.example.com/mlplane?sslmode=verify-full"
        "&sslrootcert=/etc/mlplane/ca/bundle.pem&application_name=x"
    )
    url = make_url(async_url(dsn))
    assert dict(url.query) == {"ssl": "verify-full", "application_name": "x"}
    (only,) = tls_connect_args(dsn).values()
    assert only == "postgresql://?sslrootcert=%2Fetc%2Fmlplane%2Fca%2Fbundle.pem"
    assert PASSWORD not in only


def test_a_repeated_sslmode_counts_once_the_last_as_libpq() -> None:
    url = make_url(async_url("postgresql://app@h/db?sslmode=disable&sslmode=require"))
    assert dict(url.query) == {"ssl": "require"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmode=required", "sslmode must be one of disable, allow, prefer, require"),
        ("sslmode=require&ssl=disable", "sslmode and ssl disagree"),
    ],
)
def test_a_wrong_sslmode_is_refused_without_the_password(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        async_url(f"postgresql://app:{PASSWORD}@h/db?{query}")
    assert PASSWORD not in str(caught.value)


def test_urls_of_other_drivers_are_left_alone() -> None:
    dsn = "postgresql+psycopg://app@h/db?sslmode=require"
    assert async_url(dsn) == dsn
    assert tls_connect_args(dsn) == {}


# --- the role passwords of `mlplane db setup` --------------------------------------------

QUERY_PW = "q" * 24
REGISTRY_PW = "r" * 24


def test_role_dsns_given_decide_the_passwords_and_nothing_is_written(tmp_path: Path) -> None:
    state_file = tmp_path / "db-roles.json"
    creds = RoleCredentials.for_setup(
        state_file,
        query_dsn=f"postgresql://{QUERY_ROLE}:{QUERY_PW}@h/db?sslmode=require",
        registry_dsn=f"postgresql://{REGISTRY_ROLE}:{REGISTRY_PW}@h/db",
    )
    assert creds == RoleCredentials(QUERY_PW, REGISTRY_PW)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_without_role_dsns_the_state_files_passwords_stay(tmp_path: Path) -> None:
    state_file = tmp_path / "db-roles.json"
    first = RoleCredentials.for_setup(state_file, query_dsn=None, registry_dsn=None)
    assert RoleCredentials.for_setup(state_file, query_dsn=None, registry_dsn=None) == first
    # One DSN given: its password, the other from the file.
    mixed = RoleCredentials.for_setup(
        state_file,
        query_dsn=f"postgresql://{QUERY_ROLE}:{QUERY_PW}@h/db",
        registry_dsn=None,
    )
    assert mixed == RoleCredentials(QUERY_PW, first.registry_password)


@pytest.mark.parametrize(
    ("query_dsn", "message"),
    [
        (f"postgresql://someone:{QUERY_PW}@h/db", "must connect as mlplane_query, not someone"),
        ("postgresql://mlplane_query@h/db", "must carry mlplane_query's password"),
        ("postgresql://mlplane_query:short-Pw@h/db", "must be 16-128 characters"),
        ("postgresql://mlplane_query:pass'word-with-a-quote@h/db", "must be 16-128 characters"),
        (f"not a url {QUERY_PW}", "is not a database URL"),
    ],
)
def test_unusable_role_dsns_are_refused_without_their_password(
    tmp_path: Path, query_dsn: str, message: str
) -> None:
    with pytest.raises(SetupError, match=message) as caught:
        RoleCredentials.for_setup(tmp_path / "r.json", query_dsn=query_dsn, registry_dsn=None)
    assert "MLPLANE_QUERY_DATABASE_URL" in str(caught.value)
    for secret in (QUERY_PW, "short-Pw", "pass'word"):
        assert secret not in str(caught.value)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("admin", "message"),
    [
        (None, "set MLPLANE_DATABASE_URL"),
        (f"::{PASSWORD}", "MLPLANE_DATABASE_URL is not a database URL"),
        (f"postgresql://owner:{PASSWORD}@h/db?sslmode=on", "sslmode must be one of"),
    ],
)
def test_run_setup_refuses_an_unusable_admin_dsn(
    tmp_path: Path, admin: str | None, message: str
) -> None:
    out, err = io.StringIO(), io.StringIO()
    settings = Settings(state_dir=tmp_path / "state", database_url=admin)
    assert run_setup(settings, out, err) == 2
    assert message in err.getvalue()
    assert PASSWORD not in out.getvalue() + err.getvalue()
    assert not (tmp_path / "state").exists()


# --- real connections through a TLS-answering proxy ---------------------------------------

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)


@dataclass
class Tls:
    ca_file: Path
    other_ca_file: Path
    server: ssl.SSLContext


def _certificate_authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls() -> Iterator[Tls]:
    folder = private_tmp("mlplane-tls-")
    try:
        ca_key, ca = _certificate_authority("mlplane test CA")
        _other_key, other_ca = _certificate_authority("someone else's CA")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (folder / "ca.pem").write_bytes(_pem(ca))
        (folder / "other-ca.pem").write_bytes(_pem(other_ca))
        (folder / "server.pem").write_bytes(_pem(leaf))
        (folder / "server.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(folder / "server.pem", folder / "server.key")
        yield Tls(folder / "ca.pem", folder / "other-ca.pem", server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
@starts_servers
def postgres() -> Iterator[EmbeddedPostgres]:
    root = private_tmp("mlplane-dsn-tls-")
    server = EmbeddedPostgres(root / "state")
    try:
        server.ensure_initialized()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Proxy:
    """127.0.0.1:port in front of the embedded server's socket; says 'S' when it has TLS."""

    socket: Path
    tls: ssl.SSLContext | None
    port: int = 0
    ssl_requests: int = 0
    tls_sessions: int = 0
    plain_sessions: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            first = await reader.readexactly(8)
            while first in (SSL_REQUEST, GSSENC_REQUEST):
                if first == SSL_REQUEST:
                    self.ssl_requests += 1
                if first == SSL_REQUEST and self.tls is not None:
                    writer.write(b"S")
                    await writer.drain()
                    await writer.start_tls(self.tls)
                    self.tls_sessions += 1
                else:
                    writer.write(b"N")
                    await writer.drain()
                first = await reader.readexactly(8)
            if writer.get_extra_info("ssl_object") is None:
                self.plain_sessions += 1
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.socket))
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def _proxy(postgres: EmbeddedPostgres, tls: ssl.SSLContext | None) -> AsyncIterator[Proxy]:
    proxy = Proxy(postgres.socket_dir / f".s.PGSQL.{PORT}", tls)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for task in list(proxy.tasks):
            task.cancel()
        await server.wait_closed()


def _tcp_dsn(postgres: EmbeddedPostgres, port: int, query: str, user: str | None = None) -> str:
    url = make_url(postgres.dsn())
    url = url.set(host="127.0.0.1", port=port, query={})
    if user is not None:
        url = url.set(username=user)
    return url.render_as_string(hide_password=False) + (f"?{query}" if query else "")


async def _engine_select(dsn: str) -> int:
    engine = create_engine(dsn, Settings(db_connect_timeout_seconds=5))
    try:
        async with engine.connect() as conn:
            value: int = (await conn.execute(text("SELECT 41 + 1"))).scalar_one()
            return value
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("query", "tls_offered", "ssl_requests", "tls_sessions"),
    [
        ("sslmode=disable", False, 0, 0),
        ("sslmode=disable", True, 0, 0),
        ("sslmode=prefer", False, 1, 0),  # libpq's and RDS's default: TLS when offered
        ("sslmode=prefer", True, 1, 1),
        ("sslmode=require", True, 1, 1),
        ("", True, 1, 1),  # no sslmode: asyncpg's default, prefer
    ],
)
async def test_the_engine_connects_as_the_sslmode_says(
    postgres: EmbeddedPostgres,
    tls: Tls,
    query: str,
    tls_offered: bool,
    ssl_requests: int,
    tls_sessions: int,
) -> None:
    async with _proxy(postgres, tls.server if tls_offered else None) as proxy:
        assert await _engine_select(_tcp_dsn(postgres, proxy.port, query)) == 42
    assert (proxy.ssl_requests, proxy.tls_sessions) == (ssl_requests, tls_sessions)


async def test_require_refuses_a_server_without_tls(postgres: EmbeddedPostgres) -> None:
    async with _proxy(postgres, None) as proxy:
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await _engine_select(_tcp_dsn(postgres, proxy.port, "sslmode=require"))
    assert proxy.plain_sessions == 0


async def test_verify_full_checks_the_server_against_sslrootcert(
    postgres: EmbeddedPostgres, tls: Tls
) -> None:
    async with _proxy(postgres, tls.server) as proxy:
        good = f"sslmode=verify-full&sslrootcert={tls.ca_file}"
        assert await _engine_select(_tcp_dsn(postgres, proxy.port, good)) == 42
        # The same DSN through asyncpg's own parser (the QueryService's pool).
        conn = await asyncpg.connect(_tcp_dsn(postgres, proxy.port, good))
        try:
            assert await conn.fetchval("SELECT 42") == 42
        finally:
            await conn.close()
        wrong = f"sslmode=verify-full&sslrootcert={tls.other_ca_file}"
        with pytest.raises(ssl.SSLCertVerificationError):
            await _engine_select(_tcp_dsn(postgres, proxy.port, wrong))
    assert proxy.plain_sessions == 0


async def test_db_setup_over_verified_tls_with_the_role_dsns_passwords(
    postgres: EmbeddedPostgres, tls: Tls, tmp_path: Path
) -> None:
    async with _proxy(postgres, tls.server) as proxy:
        query = f"sslmode=verify-full&sslrootcert={tls.ca_file}"
        admin = _tcp_dsn(postgres, proxy.port, query)
        query_dsn = role_dsn(admin, QUERY_ROLE, QUERY_PW)
        registry_dsn = role_dsn(admin, REGISTRY_ROLE, REGISTRY_PW)
        assert "sslmode=verify-full" in query_dsn
        settings = Settings(
            state_dir=tmp_path / "state",
            database_url=admin,
            query_database_url=query_dsn,
            registry_database_url=registry_dsn,
        )
        out, err = io.StringIO(), io.StringIO()
        # run_setup runs its own event loop, as the CLI does: give it a thread.
        assert await asyncio.to_thread(run_setup, settings, out, err) == 0, err.getvalue()
        printed = out.getvalue() + err.getvalue()
        for secret in (QUERY_PW, REGISTRY_PW, postgres.superuser_password):
            assert secret not in printed
        assert f"MLPLANE_QUERY_DATABASE_URL=postgresql://{QUERY_ROLE}:***@127.0.0.1" in printed
        assert "(password from MLPLANE_REGISTRY_DATABASE_URL)" in printed
        assert not (tmp_path / "state").exists()
        # The services' two ways in, with the DSNs as given.
        conn = await asyncpg.connect(query_dsn)
        try:
            assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
        finally:
            await conn.close()
        registry = create_engine(registry_dsn, Settings())
        try:
            async with registry.connect() as rconn:
                count = (await rconn.execute(text("SELECT count(*) FROM model_versions"))).scalar()
                assert count is not None
        finally:
            await registry.dispose()
    assert proxy.plain_sessions == 0
    assert proxy.tls_sessions >= 3

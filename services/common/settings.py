"""The one typed settings object. Built once at the entry point and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ISSUER = "https://mlplane.invalid/dev-issuer"

ROLE_DATA_SCIENTIST = "data_scientist"
ROLE_MODEL_APPROVER = "model_approver"
KNOWN_ROLES = frozenset({ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER})


def split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    """Every knob, read from `MLPLANE_*` environment variables (see README)."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_", extra="ignore")

    state_dir: Path = Field(
        default=Path(".mlplane"),
        description="Folder for embedded PostgreSQL, dev keys, the folder object store, logs.",
    )

    # Listen addresses. Port 0 picks a free port (tests); the bound port is
    # written to the state folder's stack.json.
    query_listen: str = Field(default="127.0.0.1:50051", description="QueryService gRPC address.")
    models_listen: str = Field(default="127.0.0.1:50052", description="ModelRegistry gRPC address.")
    query_metrics_port: int = Field(default=9101, description="QueryService /metrics port.")
    models_metrics_port: int = Field(default=9102, description="ModelRegistry /metrics port.")
    metrics_address: str = Field(
        default="127.0.0.1",
        description="Address the services serve /metrics on (0.0.0.0 in a container, "
        "for Prometheus to scrape).",
    )
    gateway_listen: str = Field(
        default="127.0.0.1:8080", description="Envoy listener (REST + gRPC)."
    )
    gateway_admin_port: int = Field(
        default=9901, description="Envoy admin port; always bound to 127.0.0.1."
    )
    gateway_stats_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        # The admin port also answers /quitquitquit and /config_dump: only this one read-only
        # path of it is let out, on the gateway's listen address (gateway/envoy_config.py).
        description="When set, Envoy's Prometheus metrics (GET /stats/prometheus, nothing "
        "else) on this port of the gateway's address, for a scraper.",
    )

    # Identity. Without a JWKS URL the stack is its own dev issuer: it creates a
    # key pair in the state folder and `mlplane token` mints tokens with it.
    jwt_issuer: str = Field(default=DEV_ISSUER, description="Expected `iss` claim.")
    jwt_audience: str = Field(default="mlplane", description="Expected `aud` claim.")
    jwt_jwks_url: str | None = Field(
        default=None, description="Remote JWKS of a real OIDC issuer (disables dev tokens)."
    )
    jwt_algorithms: list[str] = Field(
        default=["RS256", "ES256"], description="Accepted JWT signature algorithms."
    )
    jwt_leeway_seconds: int = Field(default=30, description="Clock skew allowed on exp/nbf.")
    jwks_cache_seconds: int = Field(default=300, description="How long a fetched JWKS is reused.")

    # Per-client rate limit at the gateway, keyed by the verified token's tenant and
    # subject. Generous on purpose: one request in flight at a time (a notebook paging
    # through a list, an SPA loading a page) never reaches it; it stops one runaway
    # script or misconfigured client from taking the plane from everyone else.
    gateway_rate_limit_per_second: int = Field(
        default=200,
        ge=0,
        description="Sustained requests per second per (tenant, subject) at the gateway; 0 = off.",
    )
    gateway_rate_limit_burst: int = Field(
        default=1000,
        ge=0,
        description="Requests a client may send at once before the per-second rate applies "
        "(token bucket size; at least the rate).",
    )

    cors_allowed_origins: list[str] = Field(
        default=["http://localhost:5173", "http://127.0.0.1:5173"],
        description="Browser origins allowed by the gateway's CORS filter.",
    )

    # PostgreSQL. Unset admin URL = embedded server in the state folder.
    database_url: str | None = Field(
        default=None,
        description="Admin DSN of an external PostgreSQL (runs migrations, creates roles).",
    )
    query_database_url: str | None = Field(
        default=None, description="DSN the QueryService uses (read-only role)."
    )
    registry_database_url: str | None = Field(
        default=None, description="DSN the ModelRegistry uses (registry role)."
    )
    db_pool_size: int = Field(default=10, description="Connections per service pool.")
    db_connect_timeout_seconds: float = Field(default=5.0, description="Connect timeout.")

    # Object store for ONNX files.
    store: Literal["folder", "s3"] = Field(default="folder", description="Object store backend.")
    store_dir: Path | None = Field(
        default=None, description="Folder store root (default: STATE_DIR/objects)."
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket for model files.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (non-AWS stores).")
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_part_size_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        le=5 * 1024**3,
        # Parts are sent from the spool file, so their size costs no memory; each part is
        # a request, so fewer, bigger parts are cheaper (measured: bench/README.md, "S3
        # throughput, second round").
        description="S3 multipart part size (5 MiB to 5 GiB).",
    )
    s3_parts_in_flight: int = Field(
        default=3, ge=1, le=16, description="Parts of one upload sent to S3 at once."
    )

    demo_plant: bool = Field(
        default=True, description="Load the demo plant into an empty database at `mlplane up`."
    )
    demo_plant_days: float = Field(default=90.0, description="Days of demo history to load.")
    # Fixed by default so every machine gets the same plant (and the example the README's
    # figures); the load moment only shifts it in time (see services/demo/plant.py).
    demo_plant_seed: int = Field(
        default=7, ge=0, description="Seed of the demo plant (`mlplane up`, `mlplane demo load`)."
    )

    # History export.
    query_max_window_days: float = Field(
        default=366.0, description="Longest time range one export may cover."
    )
    query_rest_row_cap: int = Field(
        default=100_000,
        description="Most rows a REST JSON export may return (CSV and gRPC are unbounded).",
    )
    query_arrow_batch_rows: int = Field(
        default=32_768, description="Rows per Arrow record batch (about 0.7 MiB)."
    )
    query_row_batch_rows: int = Field(
        default=5_000, description="Rows per SampleBatch/AggregateBatch message."
    )
    query_statement_timeout_seconds: float = Field(
        default=300.0, description="Server-side limit on one export query."
    )
    # Limits that keep one user's exports from taking the QueryService from the others.
    query_exports_per_user: int = Field(
        default=4,
        ge=1,
        description="Exports (ExportHistory, ExportHistoryCsv, DownloadExport) one user "
        "(tenant, subject) may run at once; beyond it: 429 / RESOURCE_EXHAUSTED "
        "TOO_MANY_EXPORTS.",
    )
    query_interactive_connections: int = Field(
        default=3,
        ge=1,
        description="Connections of the QueryService pool (MLPLANE_DB_POOL_SIZE) exports never "
        "take, kept for interactive queries; exports share the rest (at least 1), and one that "
        "finds none free within the connect timeout gets 429 EXPORT_CAPACITY_REACHED.",
    )
    query_export_idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="An export whose client takes no data for this long is ended "
        "(DEADLINE_EXCEEDED / EXPORT_IDLE_TIMEOUT, recorded as failed) and its database "
        "connection given back.",
    )
    page_token_secret: str | None = Field(
        default=None,
        description="Key that signs page tokens and download links (default: a key made in "
        "STATE_DIR/keys); every replica needs the same one.",
    )
    # The web app (served by the gateway on its own origin).
    web_dir: Path | None = Field(
        default=None,
        description="The built web app the gateway serves at / (default: web/dist of the "
        "project, when it exists; unset and absent = API only).",
    )
    oidc_client_id: str | None = Field(
        default=None,
        description="With a real issuer: the web app's OpenID Connect client id (code + PKCE).",
    )
    oidc_authority: str | None = Field(
        default=None,
        description="With a real issuer: where the web app finds the OpenID Connect discovery "
        "document (default MLPLANE_JWT_ISSUER).",
    )
    oidc_scope: str = Field(default="openid", description="Scopes the web app asks for.")
    export_link_seconds: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="How long a CSV download link from CreateExportLink works (it works once).",
    )

    # Model uploads.
    max_model_bytes: int = Field(
        default=1024**3,
        description="Largest ONNX upload (a single ONNX protobuf cannot exceed 2 GiB).",
    )
    upload_spool_dir: Path | None = Field(
        default=None,
        description="Where S3 uploads are spooled: validation reads the file, parts are "
        "sent from it (default STATE_DIR/spool; needs room for the uploads in progress "
        "and the idle spools kept for reuse).",
    )
    upload_spool_keep: int = Field(
        default=2,
        ge=0,
        le=16,
        # Why spools are kept: services/models/local_files.py (measured: bench/README.md,
        # "What changed, and why it was the spool's memory").
        description="S3 store: spool files of recorded uploads kept for the next uploads "
        "to overwrite (each as large as the largest upload it held; 0 deletes every spool).",
    )
    orphan_min_age_seconds: int = Field(
        default=3600,
        ge=60,
        # An upload's object exists for milliseconds before its row commits; an hour leaves
        # any upload in flight, in any replica, far behind (services/models/orphans.py).
        description="Stored model files that no version names (an upload cut off between "
        "storing its file and recording its row) are removed once this old.",
    )
    orphan_sweep_seconds: int = Field(
        default=3600,
        ge=0,
        description="How often the models service looks for such files (and once at start); "
        "0 never.",
    )

    # The validation worker (services/validation/): runs every new version in ONNX Runtime
    # in a sandboxed child process and reproduces its claimed metrics.
    validation_worker: bool = Field(
        default=True,
        description="`mlplane up` starts a validation worker (without one, versions stay "
        "PENDING validation and cannot be approved).",
    )
    validation_listen: str = Field(
        default="127.0.0.1:50053",
        description="Validation worker's gRPC address (health checks only).",
    )
    validation_metrics_port: int = Field(default=9103, description="Validation worker /metrics.")
    validation_concurrency: int = Field(
        default=1, ge=1, le=16, description="Versions one worker validates at once."
    )
    validation_memory_bytes: int = Field(
        default=4 * 1024**3,
        ge=256 * 1024**2,
        description="Address-space limit of the child process that runs a model (a model needs "
        "about 3x its size, plus ~200 MiB for the runtime).",
    )
    validation_cpu_seconds: int = Field(
        default=60, ge=1, description="CPU-time limit of that child."
    )
    validation_wall_seconds: float = Field(
        default=90.0, gt=0, description="Wall-time limit of that child; it is killed after."
    )
    validation_lease_seconds: float = Field(
        default=60.0,
        ge=5,
        # Renewed every third of it while the job runs: only a worker that died (or cannot
        # reach the database) loses its job to another.
        description="How long a worker's claim on a job lasts without renewal; a dead "
        "worker's job is taken again after it.",
    )
    validation_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Claims of one job before it fails as WORKER_LOST (a model that kills "
        "every worker that touches it).",
    )
    validation_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often an idle worker looks for jobs when no notification came "
        "(uploads notify it at once).",
    )
    validation_store_retries: int = Field(
        default=3, ge=0, description="Retries of a failed object-store download per attempt."
    )

    # Approval events (the outbox relay).
    webhook_urls: list[str] = Field(
        default=[], description="Where approval events are POSTed (JSON list of URLs)."
    )
    webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key for the X-Mlplane-Signature header."
    )
    webhook_poll_seconds: float = Field(default=1.0, description="How often the relay looks.")
    webhook_backoff_seconds: float = Field(
        default=2.0, description="First retry delay; doubles per attempt, at most 5 minutes."
    )
    webhook_timeout_seconds: float = Field(default=5.0, description="Per delivery attempt.")

    log_level: str = Field(default="INFO", description="Log level of the services.")
    shutdown_grace_seconds: float = Field(
        default=10.0, description="How long in-flight RPCs may finish on SIGTERM."
    )
    shutdown_drain_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        # Longer than the gateway takes to see it (its health checks: every 2 s, out after 2
        # failures; gateway/clusters.py), so no call reaches a service that has stopped.
        description="On SIGTERM a service first reports NOT_SERVING and keeps serving for this "
        "long, while the gateway (or Kubernetes' readiness probe) takes it out of rotation; "
        "then in-flight RPCs get MLPLANE_SHUTDOWN_GRACE_SECONDS to finish. SIGINT skips it.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=16,
        description="`mlplane up`: processes of each service behind the gateway (the first on "
        "the configured ports, the others on free ports).",
    )

    @field_validator("query_listen", "models_listen", "gateway_listen", "validation_listen")
    @classmethod
    def _hostport(cls, value: str) -> str:
        split_hostport(value)
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"webhook URL {url!r} must be http(s)")
        return value

    @field_validator("jwt_jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("jwt_jwks_url must be an http(s) URL")
        return value

    @property
    def dev_issuer_enabled(self) -> bool:
        return self.jwt_jwks_url is None

    @property
    def jwks_file(self) -> Path:
        return self.state_dir / "keys" / "jwks.json"

    @property
    def dev_private_key_file(self) -> Path:
        return self.state_dir / "keys" / "dev-signing-key.pem"

    @property
    def page_token_key_file(self) -> Path:
        return self.state_dir / "keys" / "page-token.key"

    @property
    def object_store_dir(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.state_dir / "objects"

    @field_validator("max_model_bytes")
    @classmethod
    def _max_model_bytes(cls, value: int) -> int:
        if not 0 < value < 2**31:
            raise ValueError("max_model_bytes must be between 1 and 2 GiB - 1 (protobuf limit)")
        return value

    @property
    def spool_dir(self) -> Path:
        return self.upload_spool_dir or self.state_dir / "spool"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def web_dist_dir(self) -> Path | None:
        """The built web app to serve, if there is one."""
        if self.web_dir is not None:
            return self.web_dir if (self.web_dir / "index.html").is_file() else None
        default = Path(__file__).resolve().parents[2] / "web" / "dist"
        return default if (default / "index.html").is_file() else None

    @property
    def web_cache_dir(self) -> Path:
        return self.state_dir / "web"

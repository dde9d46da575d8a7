"""`mlplane`: run the stack, run one service, mint dev tokens, set up a database;
and, as a client of a running stack, export history and manage models and approvals.

Kept whole (over 400 lines): one argparse tree for every server-side command, read in the
order `mlplane --help` lists them; each handler is a few lines that call into its package."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from services.common.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.logs import configure_logging
    from services.common.server import run_until_signalled

    configure_logging(args.service, settings.log_level)
    if args.service == "query":
        from services.query.service import query_spec

        spec, listen, metrics_port = (
            query_spec(settings),
            settings.query_listen,
            settings.query_metrics_port,
        )
    elif args.service == "models":
        from services.models.service import models_spec

        spec, listen, metrics_port = (
            models_spec(settings),
            settings.models_listen,
            settings.models_metrics_port,
        )
    else:
        from services.validation.worker import validation_spec

        spec, listen, metrics_port = (
            validation_spec(settings),
            settings.validation_listen,
            settings.validation_metrics_port,
        )
    asyncio.run(
        run_until_signalled(
            settings, spec, listen=listen, metrics_port=metrics_port, ready_file=args.ready_file
        )
    )
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from services.stack.up import run_up

    if args.store is not None:  # the services it starts read it from the environment
        os.environ["MLPLANE_STORE"] = args.store
        settings = settings.model_copy(update={"store": args.store})
    if args.replicas is not None:
        settings = settings.model_copy(update={"replicas": args.replicas})
    return run_up(settings)


def _replica_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 16:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to 16, got {text!r}")
    return count


def _located(settings: Settings, command: str) -> Settings | None:
    """Settings whose state folder is the one this admin command should use (see
    services/stack/registry.py); None, after saying what to do, when there is none."""
    from services.stack.registry import StateDirNotFound, locate_state_dir

    try:
        state_dir = locate_state_dir(settings)
    except StateDirNotFound as exc:
        print(f"mlplane {command}: {exc}", file=sys.stderr)
        return None
    return settings.model_copy(update={"state_dir": state_dir})


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.devkeys import RealIssuerConfigured, mint_token

    # With a real issuer there is no key to find: mint_token refuses, whatever the folder.
    located = _located(settings, "token") if settings.dev_issuer_enabled else settings
    if located is None:
        return 2
    tenant = None if "tenant" in args.omit_claim else args.tenant
    roles = args.role or []
    try:
        token = mint_token(
            located,
            subject=args.subject,
            tenant=tenant,
            roles=roles,
            ttl_seconds=args.ttl,
            audience=args.audience,
            issuer=args.issuer,
            omit=set(args.omit_claim),
        )
    except (RealIssuerConfigured, FileNotFoundError) as exc:
        print(f"mlplane token: {exc}", file=sys.stderr)
        return 2
    if args.url:
        # The token rides in the URL's fragment: browsers never send a fragment to the
        # server, and the app removes it from the address bar at once.
        print(f"{sign_in_base(located)}/#token={token}")
    else:
        print(token)
    # Told to a person only: `$(mlplane token)` in a script keeps a quiet stderr. Never the
    # token itself: stderr ends up in logs more often than stdout does.
    if sys.stderr.isatty():
        print(token_note(args.subject, roles, tenant, args.ttl), file=sys.stderr)
    return 0


def sign_in_base(settings: Settings) -> str:
    """The web app's address: the running stack's gateway, else the configured listener."""
    import json

    try:
        url = json.loads(settings.stack_file.read_text())["gateway_url"]
    except (OSError, ValueError, KeyError, TypeError):
        host, _, port = settings.gateway_listen.rpartition(":")
        url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"  # noqa: S104
    return str(url).rstrip("/")


def token_note(subject: str, roles: list[str], tenant: str | None, ttl: int) -> str:
    from datetime import UTC, datetime, timedelta

    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl)
    who = f"{subject} ({', '.join(roles) or 'no roles'}; tenant {tenant or '-'})"
    if ttl <= 0:
        return f"mlplane token: for {who}, already expired at {expires:%Y-%m-%d %H:%M:%S} UTC"
    return (
        f"mlplane token: for {who}, valid until {expires:%Y-%m-%d %H:%M:%S} UTC "
        f"({_duration(ttl)}; --ttl SECONDS changes it)"
    )


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _db_setup(_args: argparse.Namespace, settings: Settings) -> int:
    from services.db.setup import run_setup

    return run_setup(settings)


def _admin_settings(settings: Settings, command: str) -> Settings | None:
    # An external database needs no state folder; the embedded one lives in it.
    return settings if settings.database_url else _located(settings, command)


def _grant(args: argparse.Namespace, settings: Settings) -> int:
    from services.db import grants

    located = _admin_settings(settings, "grant")
    if located is None:
        return 2
    settings = located
    try:
        dsn = grants.admin_dsn(settings)
    except RuntimeError as exc:
        print(f"mlplane grant: {exc}", file=sys.stderr)
        return 2
    if args.grant_command == "add":
        kind, principal = ("role", args.role) if args.role else ("subject", args.subject)
        row = asyncio.run(
            grants.add_grant(
                dsn,
                tenant=args.tenant,
                kind=kind,
                principal=principal,
                pattern=args.assets,
                created_by=args.by,
            )
        )
        print(
            f"grant {row.grant_id}: {row.principal_kind} {row.principal!r} may read "
            f"{row.asset_pattern!r} in tenant {row.tenant!r}"
        )
        return 0
    if args.grant_command == "list":
        rows = asyncio.run(grants.list_grants(dsn, tenant=args.tenant))
        print(f"{'ID':>5}  {'TENANT':<12} {'KIND':<8} {'PRINCIPAL':<20} ASSETS")
        for r in rows:
            print(
                f"{r.grant_id:>5}  {r.tenant:<12} {r.principal_kind:<8} {r.principal:<20} "
                f"{r.asset_pattern}"
            )
        return 0
    removed = asyncio.run(grants.revoke_grant(dsn, args.grant_id, revoked_by=args.by))
    if not removed:
        print(f"mlplane grant revoke: no grant {args.grant_id}", file=sys.stderr)
        return 1
    print(f"grant {args.grant_id} revoked")
    return 0


def _demo_load(args: argparse.Namespace, settings: Settings) -> int:
    from services.db.grants import admin_dsn
    from services.demo.load import load_assets, load_demo_plant

    located = _admin_settings(settings, "demo load")
    if located is None:
        return 2
    try:
        dsn = admin_dsn(located)
    except RuntimeError as exc:
        print(f"mlplane demo load: {exc}", file=sys.stderr)
        return 2
    try:
        if args.assets is None:
            report = asyncio.run(
                load_demo_plant(
                    dsn,
                    tenant=args.tenant,
                    days=args.days or settings.demo_plant_days,
                    seed=settings.demo_plant_seed,
                    only_if_empty=False,
                    loaded_by=args.by,
                )
            )
        else:
            asset_ids = [f"{args.prefix}-{i:03d}" for i in range(1, args.assets + 1)]
            report = asyncio.run(
                load_assets(
                    dsn,
                    tenant=args.tenant,
                    asset_ids=asset_ids,
                    kind=args.kind,
                    days=args.days or 1,
                    hz=args.hz,
                    n_tags=args.tags,
                )
            )
    except ValueError as exc:
        print(f"mlplane demo load: {exc}", file=sys.stderr)
        return 2
    if report is None:
        return 0
    from services.demo.report import describe_load

    for line in asyncio.run(describe_load(dsn, report, prog=_prog())):
        print(line)
    return 0


def _prog() -> str:
    # Commands to copy are printed the way this one was run (`.venv/bin/mlplane` in the README).
    argv0 = Path(sys.argv[0])
    return str(argv0) if argv0.name == "mlplane" else "mlplane"


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    import json
    from datetime import datetime

    from services.db.audit import read_audit
    from services.db.grants import admin_dsn

    located = _admin_settings(settings, "audit")
    if located is None:
        return 2
    try:
        dsn = admin_dsn(located)
        since = datetime.fromisoformat(args.since) if args.since else None
        until = datetime.fromisoformat(args.until) if args.until else None
    except (RuntimeError, ValueError) as exc:
        print(f"mlplane audit: {exc}", file=sys.stderr)
        return 2
    rows = asyncio.run(
        read_audit(
            dsn,
            tenant=args.tenant,
            subject=args.subject,
            model_id=args.model,
            action=args.action,
            since=since,
            until=until,
            limit=args.limit,
        )
    )
    if args.json:
        for row in rows:
            print(json.dumps({**row.__dict__, "time": row.time.isoformat()}, default=str))
        return 0
    for row in rows:
        print(
            f"{row.time:%Y-%m-%d %H:%M:%S}  {row.tenant:<10} {row.subject:<12} {row.action:<22} "
            f"{row.outcome:<22} {row.resource}"
        )
    return 0


# `mlplane gateway render` without a web app: a web_dir with no index.html (Settings.web_dist_dir).
_NO_WEB_APP = Path("/nonexistent/mlplane-no-web-app")


def _gateway_render(args: argparse.Namespace, settings: Settings) -> int:
    """The Envoy bootstrap `make up` runs, for a gateway whose services live elsewhere
    (Kubernetes Services, containers): the same renderer, the same descriptor set, the
    same settings; only the addresses are given. With --out-dir the result is a bundle
    that needs nothing outside it: envoy.json, the descriptor set, the web app's files
    and their gzipped copies (and, without a JWKS URL, the JWKS is expected at
    OUT_DIR/keys/jwks.json, where the renderer points Envoy)."""
    import json
    import shutil

    from gateway.envoy_config import render_envoy_config, write_envoy_config
    from services.common.settings import split_hostport
    from services.stack.up import DESCRIPTOR

    def hostport(value: str | None, default: str) -> tuple[str, int]:
        return split_hostport(value if value is not None else default)

    try:
        query_address = hostport(args.query_address, settings.query_listen)
        models_address = hostport(args.models_address, settings.models_listen)
        listen_address = hostport(args.listen, settings.gateway_listen)
    except ValueError as exc:
        print(f"mlplane gateway render: {exc}", file=sys.stderr)
        return 2
    descriptor: Path = args.descriptor if args.descriptor is not None else DESCRIPTOR
    if not descriptor.is_file():
        print(f"mlplane gateway render: no descriptor set at {descriptor}", file=sys.stderr)
        return 2
    web: Path | None = None if args.no_web else (args.web_dist or settings.web_dist_dir)
    if web is not None and not (web / "index.html").is_file():
        print(f"mlplane gateway render: no web app (index.html) in {web}", file=sys.stderr)
        return 2
    admin_port: int = settings.gateway_admin_port if args.admin_port is None else args.admin_port
    output: Path | None = args.output
    out_dir: Path | None = args.out_dir
    if out_dir is not None:
        out_dir = out_dir.resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        bundled = out_dir / "mlplane.pb"
        if descriptor.resolve() != bundled:
            shutil.copyfile(descriptor, bundled)
        descriptor = bundled
        dist = out_dir / "dist"
        if web is not None and web.resolve() != dist:
            shutil.rmtree(dist, ignore_errors=True)
            shutil.copytree(web, dist)
        elif web is None:
            shutil.rmtree(dist, ignore_errors=True)
        # The state folder decides where the gzipped copies (OUT_DIR/web) and a local
        # JWKS (OUT_DIR/keys/jwks.json) are looked for.
        settings = settings.model_copy(
            update={"state_dir": out_dir, "web_dir": dist if web is not None else _NO_WEB_APP}
        )
        if output is None:
            output = out_dir / "envoy.json"
    else:
        settings = settings.model_copy(update={"web_dir": web or _NO_WEB_APP})
    try:
        config = render_envoy_config(
            settings,
            query_address=query_address,
            models_address=models_address,
            descriptor_path=descriptor,
            listen_address=listen_address,
            admin_port=admin_port,
            stats_port=settings.gateway_stats_port if args.stats_port is None else args.stats_port,
        )
    except ValueError as exc:
        print(f"mlplane gateway render: {exc}", file=sys.stderr)
        return 2
    if output is None or str(output) == "-":
        json.dump(config, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_envoy_config(output, config)
        print(f"mlplane gateway render: wrote {output}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplane", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole stack in the foreground (make up)")
    up.add_argument(
        "--store",
        choices=["folder", "s3"],
        help="the model store (default MLPLANE_STORE, else folder); s3 without "
        "MLPLANE_S3_ENDPOINT_URL runs an embedded SeaweedFS in the state folder",
    )
    up.add_argument(
        "--replicas",
        type=_replica_count,
        metavar="N",
        help="processes of each service behind the gateway, balanced and health-checked as "
        "on Kubernetes (default MLPLANE_REPLICAS, else 1)",
    )
    up.set_defaults(func=_up)

    serve = commands.add_parser(
        "serve", help="run one gRPC service, or the validation worker (`serve validation`)"
    )
    serve.add_argument("service", choices=["query", "models", "validation"])
    serve.add_argument(
        "--ready-file", type=Path, help="write the bound ports here as JSON once serving"
    )
    serve.set_defaults(func=_serve)

    token = commands.add_parser(
        "token",
        help="print a JWT signed by the embedded dev issuer (dev stacks only)",
        description="Print a JWT signed by the running dev stack's key on stdout. The state "
        "folder is MLPLANE_STATE_DIR, else ./.mlplane, else the running stack's. Tokens last "
        "an hour unless --ttl says otherwise; on a terminal, stderr says whom a token is for "
        "and until when it is valid.",
    )
    token.add_argument("--subject", default="alice", help="sub claim (default alice)")
    token.add_argument("--tenant", default="demo", help="tenant claim (default demo)")
    token.add_argument(
        "--role", action="append", help="a role; repeat for several; any string is accepted"
    )
    token.add_argument(
        "--ttl",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime in seconds (default 3600 = 1 hour); negative = already expired",
    )
    token.add_argument(
        "--url",
        action="store_true",
        help="print the web app's sign-in URL for this token instead (opened in a browser, "
        "it signs that browser in; the token is in the URL's fragment, never sent to a server)",
    )
    token.add_argument("--audience", help="aud claim (default: the configured audience)")
    token.add_argument("--issuer", help="iss claim (default: the configured issuer)")
    token.add_argument(
        "--omit-claim",
        action="append",
        default=[],
        choices=["tenant", "roles", "sub", "exp"],
        help="leave a claim out (to test rejections); repeatable",
    )
    token.set_defaults(func=_token)

    grant = commands.add_parser("grant", help="per-asset read grants")
    grant_commands = grant.add_subparsers(dest="grant_command", required=True)
    add = grant_commands.add_parser("add", help="let a role or a subject read assets")
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--role", help="a role, e.g. data_scientist")
    who.add_argument("--subject", help="one user (the token's sub)")
    add.add_argument("--assets", required=True, help="asset id glob, e.g. 'pump-*'")
    add.add_argument("--tenant", default="demo")
    add.add_argument("--by", default="cli", help="who grants it (recorded in the audit log)")
    add.set_defaults(func=_grant)
    listing = grant_commands.add_parser("list", help="show grants")
    listing.add_argument("--tenant", help="only this tenant")
    listing.set_defaults(func=_grant)
    revoke = grant_commands.add_parser("revoke", help="remove a grant by id")
    revoke.add_argument("grant_id", type=int)
    revoke.add_argument("--by", default="cli")
    revoke.set_defaults(func=_grant)

    demo = commands.add_parser("demo", help="demo and benchmark data")
    demo_commands = demo.add_subparsers(dest="demo_command", required=True)
    load = demo_commands.add_parser(
        "load",
        help="load the demo plant, or with --assets a bigger synthetic set for benchmarks",
        description="Without --assets: the demo plant again (MLPLANE_DEMO_PLANT_SEED, "
        "MLPLANE_DEMO_PLANT_DAYS), anchored on this week's Monday and loaded up to now; a "
        "running `mlplane up` keeps tenant demo's up to now. With --assets N: assets "
        "PREFIX-001..PREFIX-N, --days of history up to now, readable by nobody until a grant "
        "says so (the command prints the one to run).",
    )
    load.add_argument("--tenant", default="demo")
    load.add_argument("--assets", type=int, help="number of synthetic assets (PREFIX-001…)")
    load.add_argument(
        "--days",
        type=float,
        help="days of history (default MLPLANE_DEMO_PLANT_DAYS, or 1 with --assets)",
    )
    load.add_argument("--hz", type=float, default=1.0, help="samples per second per tag")
    load.add_argument("--tags", type=int, default=10, help="tags per asset")
    load.add_argument("--prefix", default="bench", help="asset id prefix")
    load.add_argument("--kind", default="pump", choices=["pump", "turbine"])
    load.add_argument(
        "--by", default="cli", help="who loads the demo plant (recorded in the audit log)"
    )
    load.set_defaults(func=_demo_load)

    audit = commands.add_parser("audit", help="print the audit log, newest first")
    audit.add_argument("--tenant")
    audit.add_argument("--subject", help="who acted")
    audit.add_argument("--model", help="a model id: its uploads, approvals and archives")
    audit.add_argument("--action", help="action prefix, e.g. history.export or approval.")
    audit.add_argument("--since", help="ISO time, inclusive")
    audit.add_argument("--until", help="ISO time, exclusive")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="one JSON object a line")
    audit.set_defaults(func=_audit)

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    setup = db_commands.add_parser(
        "setup", help="migrate MLPLANE_DATABASE_URL and create the service roles"
    )
    setup.set_defaults(func=_db_setup)

    gateway = commands.add_parser("gateway", help="the Envoy gateway's configuration")
    gateway_commands = gateway.add_subparsers(dest="gateway_command", required=True)
    render = gateway_commands.add_parser(
        "render",
        help="print or write the Envoy configuration `make up` would run, for given addresses",
        description="Render the gateway's Envoy bootstrap (JSON, which is also YAML) with the "
        "renderer and settings (MLPLANE_*) `make up` uses, for services at the given "
        "addresses: host names (Kubernetes Services, resolved by DNS) or IP addresses. Prints "
        "it on stdout, or with --out-dir writes a self-contained bundle: envoy.json, "
        "mlplane.pb (the descriptor set), dist/ (the web app) and web/ (its gzipped copies). "
        "Without MLPLANE_JWT_JWKS_URL Envoy reads the JWKS from OUT_DIR/keys/jwks.json "
        "(from MLPLANE_STATE_DIR/keys/jwks.json without --out-dir).",
    )
    render.add_argument(
        "--query-address",
        metavar="HOST:PORT",
        help="the QueryService (default MLPLANE_QUERY_LISTEN), e.g. mlplane-query:50051",
    )
    render.add_argument(
        "--models-address",
        metavar="HOST:PORT",
        help="the ModelRegistry (default MLPLANE_MODELS_LISTEN), e.g. mlplane-models:50052",
    )
    render.add_argument(
        "--listen",
        metavar="IP:PORT",
        help="Envoy's listener (default MLPLANE_GATEWAY_LISTEN), e.g. 0.0.0.0:8080",
    )
    render.add_argument(
        "--admin-port",
        type=int,
        metavar="PORT",
        help="Envoy's admin port, always on 127.0.0.1 (default MLPLANE_GATEWAY_ADMIN_PORT)",
    )
    render.add_argument(
        "--stats-port",
        type=int,
        metavar="PORT",
        help="also serve Envoy's Prometheus metrics (GET /stats/prometheus only) on this port "
        "of the listen address (default MLPLANE_GATEWAY_STATS_PORT; unset: not served)",
    )
    render.add_argument(
        "--descriptor",
        type=Path,
        metavar="FILE",
        help="the descriptor set (default: the project's generated/mlplane.pb, as make up)",
    )
    web_app = render.add_mutually_exclusive_group()
    web_app.add_argument(
        "--web-dist",
        type=Path,
        metavar="DIR",
        help="the built web app to serve at / (default MLPLANE_WEB_DIR, else web/dist when "
        "built, as make up)",
    )
    web_app.add_argument("--no-web", action="store_true", help="serve the API only")
    render.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write the self-contained bundle here (the config refers to files in DIR only)",
    )
    render.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where the config goes ('-' = stdout; default stdout, or DIR/envoy.json)",
    )
    render.set_defaults(func=_gateway_render)

    # Client verbs (assets, export, upload, submit, models, versions, download,
    # approvals): they talk to a running gateway through the SDK.
    from mlplane_client.cli import add_client_commands

    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())

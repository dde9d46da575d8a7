"""`mlplane`: run the stack, run one service, mint dev tokens, set up a database."""

from __future__ import annotations

import argparse
import asyncio
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
    else:
        from services.models.service import models_spec

        spec, listen, metrics_port = (
            models_spec(settings),
            settings.models_listen,
            settings.models_metrics_port,
        )
    asyncio.run(
        run_until_signalled(
            settings, spec, listen=listen, metrics_port=metrics_port, ready_file=args.ready_file
        )
    )
    return 0


def _up(_args: argparse.Namespace, settings: Settings) -> int:
    from services.stack.up import run_up

    return run_up(settings)


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.devkeys import RealIssuerConfigured, mint_token

    try:
        token = mint_token(
            settings,
            subject=args.subject,
            tenant=None if "tenant" in args.omit_claim else args.tenant,
            roles=args.role or [],
            ttl_seconds=args.ttl,
            audience=args.audience,
            issuer=args.issuer,
            omit=set(args.omit_claim),
        )
    except (RealIssuerConfigured, FileNotFoundError) as exc:
        print(f"mlplane token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _db_setup(_args: argparse.Namespace, settings: Settings) -> int:
    from services.db.setup import (
        QUERY_ROLE,
        REGISTRY_ROLE,
        RoleCredentials,
        role_dsn,
        setup_database,
    )

    if not settings.database_url:
        print("mlplane db setup: set MLPLANE_DATABASE_URL to an admin DSN", file=sys.stderr)
        return 2
    creds = RoleCredentials.load_or_create(settings.state_dir / "db-roles.json")
    asyncio.run(setup_database(settings.database_url, creds))
    query_dsn = role_dsn(settings.database_url, QUERY_ROLE, creds.query_password)
    print(f"MLPLANE_QUERY_DATABASE_URL={query_dsn}")
    print(
        "MLPLANE_REGISTRY_DATABASE_URL="
        f"{role_dsn(settings.database_url, REGISTRY_ROLE, creds.registry_password)}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplane", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole stack in the foreground (make up)")
    up.set_defaults(func=_up)

    serve = commands.add_parser("serve", help="run one gRPC service")
    serve.add_argument("service", choices=["query", "models"])
    serve.add_argument(
        "--ready-file", type=Path, help="write the bound ports here as JSON once serving"
    )
    serve.set_defaults(func=_serve)

    token = commands.add_parser(
        "token", help="print a JWT signed by the embedded dev issuer (dev stacks only)"
    )
    token.add_argument("--subject", default="alice", help="sub claim (default alice)")
    token.add_argument("--tenant", default="demo", help="tenant claim (default demo)")
    token.add_argument(
        "--role", action="append", help="a role; repeat for several; any string is accepted"
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until expiry; negative = already expired"
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

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    setup = db_commands.add_parser(
        "setup", help="migrate MLPLANE_DATABASE_URL and create the service roles"
    )
    setup.set_defaults(func=_db_setup)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())

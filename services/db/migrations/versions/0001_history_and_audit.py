"""History tables, per-asset grants and the append-only audit log.

Revision ID: 0001
Revises:
"""

from services.db.sql_script import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE assets (
            asset_pk     bigserial PRIMARY KEY,
            tenant_id    text NOT NULL,
            asset_id     text NOT NULL,
            display_name text NOT NULL DEFAULT '',
            kind         text NOT NULL DEFAULT '',
            UNIQUE (tenant_id, asset_id)
        );

        CREATE TABLE tags (
            tag_pk      serial PRIMARY KEY,
            asset_pk    bigint NOT NULL REFERENCES assets ON DELETE CASCADE,
            name        text NOT NULL,
            unit        text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            UNIQUE (asset_pk, name)
        );

        -- Narrow history: one row per sample. The primary key's order is the
        -- export's order (asset, time, tag), so a range export is one index
        -- scan with no sort.
        CREATE TABLE tag_data (
            asset_pk bigint NOT NULL,
            ts       timestamptz NOT NULL,
            tag_pk   integer NOT NULL,
            value    double precision NOT NULL,
            quality  smallint NOT NULL DEFAULT 192,
            PRIMARY KEY (asset_pk, ts, tag_pk)
        );

        CREATE TABLE failure_events (
            event_pk     bigserial PRIMARY KEY,
            asset_pk     bigint NOT NULL REFERENCES assets ON DELETE CASCADE,
            start_time   timestamptz NOT NULL,
            end_time     timestamptz,
            failure_mode text NOT NULL,
            description  text NOT NULL DEFAULT ''
        );
        CREATE INDEX failure_events_asset_time ON failure_events (asset_pk, start_time);

        -- Who may read which assets: a role or a subject, and a glob over asset ids.
        CREATE TABLE asset_grants (
            grant_pk       bigserial PRIMARY KEY,
            tenant_id      text NOT NULL,
            principal_kind text NOT NULL CHECK (principal_kind IN ('role', 'subject')),
            principal      text NOT NULL,
            asset_pattern  text NOT NULL,
            created_by     text NOT NULL,
            create_time    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, principal_kind, principal, asset_pattern)
        );

        -- Append-only: application roles get INSERT and SELECT, never UPDATE or DELETE.
        CREATE TABLE audit_log (
            audit_pk    bigserial PRIMARY KEY,
            event_time  timestamptz NOT NULL DEFAULT now(),
            tenant_id   text NOT NULL,
            subject     text NOT NULL,
            action      text NOT NULL,
            resource    text NOT NULL,
            outcome     text NOT NULL,
            request_id  text,
            detail      jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_time ON audit_log (tenant_id, event_time);
        """
    )


def downgrade() -> None:
    execute_script(
        "DROP TABLE audit_log, asset_grants, failure_events, tag_data, tags, assets CASCADE"
    )

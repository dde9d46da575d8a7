"""Export manifests, and the only write paths the read-only QueryService has.

The query role may not INSERT, UPDATE or DELETE anything. What it must record
(export manifests, audit entries) goes through three SECURITY DEFINER
functions that can only append an audit row, open a manifest and close it
once, so a compromised query service still cannot touch history or rewrite
the audit trail.

Revision ID: 0002
Revises: 0001
"""

from services.db.sql_script import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE exports (
            export_id          uuid PRIMARY KEY,
            tenant_id          text NOT NULL,
            subject            text NOT NULL,
            asset_id           text NOT NULL,
            start_time         timestamptz NOT NULL,
            end_time           timestamptz NOT NULL,
            tags               text[] NOT NULL,
            resolution_seconds bigint,
            encoding           text NOT NULL CHECK (encoding IN ('rows', 'arrow', 'csv')),
            status             text NOT NULL DEFAULT 'running'
                               CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
            row_count          bigint,
            sha256             text,
            request_id         text,
            create_time        timestamptz NOT NULL DEFAULT now(),
            finish_time        timestamptz
        );
        CREATE INDEX exports_tenant_time ON exports (tenant_id, create_time);

        -- When TimescaleDB is installed, history becomes a hypertable; the
        -- queries are the same either way.
        DO $$
        BEGIN
          IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb') THEN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            PERFORM create_hypertable('tag_data', 'ts', migrate_data => true,
                                      chunk_time_interval => interval '1 day');
          END IF;
        END $$;

        CREATE FUNCTION mlplane_begin_export(
            p_export_id uuid, p_tenant text, p_subject text, p_asset text,
            p_start timestamptz, p_end timestamptz, p_tags text[],
            p_resolution_seconds bigint, p_encoding text, p_request_id text
        ) RETURNS void
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
            INSERT INTO exports (export_id, tenant_id, subject, asset_id, start_time, end_time,
                                 tags, resolution_seconds, encoding, request_id)
            VALUES (p_export_id, p_tenant, p_subject, p_asset, p_start, p_end,
                    p_tags, p_resolution_seconds, p_encoding, p_request_id);
        $$;

        CREATE FUNCTION mlplane_finish_export(
            p_export_id uuid, p_status text, p_row_count bigint, p_sha256 text
        ) RETURNS void
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
            UPDATE exports
               SET status = p_status, row_count = p_row_count, sha256 = p_sha256,
                   finish_time = now()
             WHERE export_id = p_export_id AND status = 'running';
        $$;

        CREATE FUNCTION mlplane_audit(
            p_tenant text, p_subject text, p_action text, p_resource text,
            p_outcome text, p_request_id text, p_detail jsonb
        ) RETURNS void
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
            INSERT INTO audit_log (tenant_id, subject, action, resource, outcome, request_id,
                                   detail)
            VALUES (p_tenant, p_subject, p_action, p_resource, p_outcome, p_request_id,
                    coalesce(p_detail, '{}'::jsonb));
        $$;

        REVOKE ALL ON FUNCTION mlplane_begin_export(uuid, text, text, text, timestamptz,
            timestamptz, text[], bigint, text, text) FROM PUBLIC;
        REVOKE ALL ON FUNCTION mlplane_finish_export(uuid, text, bigint, text) FROM PUBLIC;
        REVOKE ALL ON FUNCTION mlplane_audit(text, text, text, text, text, text, jsonb)
            FROM PUBLIC;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP FUNCTION mlplane_audit(text, text, text, text, text, text, jsonb);
        DROP FUNCTION mlplane_finish_export(uuid, text, bigint, text);
        DROP FUNCTION mlplane_begin_export(uuid, text, text, text, timestamptz, timestamptz,
            text[], bigint, text, text);
        DROP TABLE exports;
        """
    )

"""The model registry: names, models, versions and their status history.

`model_names` hands out (model id, version number) before an upload starts, so
the object key `{tenant}/{model_id}/{version}.onnx` is known while the bytes
stream to the store. A `models` row and a `model_versions` row are written
only when the object is durably stored, in one transaction. (Since issue #14 the
version number itself is given in that transaction: `model_names` hands out a storage
slot only, and a failed upload burns no version number.)

Revision ID: 0003
Revises: 0002
"""

from services.db.sql_script import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE model_names (
            tenant_id    text NOT NULL,
            name         text NOT NULL,
            model_id     uuid NOT NULL UNIQUE,
            next_version bigint NOT NULL DEFAULT 1,
            PRIMARY KEY (tenant_id, name)
        );

        CREATE TABLE models (
            model_id       uuid PRIMARY KEY,
            tenant_id      text NOT NULL,
            name           text NOT NULL,
            description    text NOT NULL DEFAULT '',
            latest_version bigint NOT NULL,
            created_by     text NOT NULL,
            create_time    timestamptz NOT NULL DEFAULT now(),
            update_time    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, name)
        );

        CREATE TABLE model_versions (
            model_id            uuid NOT NULL REFERENCES models ON DELETE RESTRICT,
            version             bigint NOT NULL,
            tenant_id           text NOT NULL,
            status              text NOT NULL CHECK (status IN ('PENDING_APPROVAL', 'IN_REVIEW',
                                    'APPROVED', 'REJECTED', 'ARCHIVED')),
            description         text NOT NULL DEFAULT '',
            labels              jsonb NOT NULL DEFAULT '{}',
            metrics             jsonb NOT NULL DEFAULT '{}',
            training_export_ids text[] NOT NULL DEFAULT '{}',
            storage_key         text NOT NULL UNIQUE,
            sha256              text NOT NULL,
            size_bytes          bigint NOT NULL,
            signature           jsonb NOT NULL,
            created_by          text NOT NULL,
            create_time         timestamptz NOT NULL DEFAULT now(),
            update_time         timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (model_id, version)
        );
        CREATE INDEX model_versions_tenant_status ON model_versions (tenant_id, status);

        CREATE TABLE model_version_status_history (
            change_pk   bigserial PRIMARY KEY,
            model_id    uuid NOT NULL,
            version     bigint NOT NULL,
            from_status text,
            to_status   text NOT NULL,
            actor       text NOT NULL,
            comment     text NOT NULL DEFAULT '',
            change_time timestamptz NOT NULL DEFAULT now(),
            FOREIGN KEY (model_id, version) REFERENCES model_versions ON DELETE CASCADE
        );
        CREATE INDEX status_history_version
            ON model_version_status_history (model_id, version, change_pk);
        """
    )


def downgrade() -> None:
    execute_script("DROP TABLE model_version_status_history, model_versions, models, model_names")

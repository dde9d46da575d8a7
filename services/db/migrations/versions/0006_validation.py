"""Validation jobs and evaluation sets (issue #16).

Every version gets a `validation_jobs` row in the transaction that stores it: the queue
the validation workers take work from (`FOR UPDATE SKIP LOCKED` and a lease, so any
number of workers share it and a crashed worker's job is taken again once its lease
runs out), and, once done, the report approvers read. Approval needs `state = 'PASSED'`.

An evaluation set uploaded with a version is an object beside the model's
(`evaluation_key`); the worker reproduces the version's claimed metrics on it.

Versions stored before this migration are queued too: the workers validate them.

Revision ID: 0006
Revises: 0005
"""

from services.db.sql_script import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE model_versions
            ADD COLUMN evaluation_key          text UNIQUE,
            ADD COLUMN evaluation_sha256       text,
            ADD COLUMN evaluation_size_bytes   bigint,
            ADD COLUMN evaluation_label_column text;

        CREATE TABLE validation_jobs (
            model_id      uuid NOT NULL,
            version       bigint NOT NULL,
            tenant_id     text NOT NULL,
            state         text NOT NULL DEFAULT 'PENDING'
                              CHECK (state IN ('PENDING', 'RUNNING', 'PASSED', 'FAILED')),
            attempts      integer NOT NULL DEFAULT 0,
            lease_owner   text,
            lease_expires timestamptz,
            create_time   timestamptz NOT NULL DEFAULT now(),
            start_time    timestamptz,
            complete_time timestamptz,
            reason        text NOT NULL DEFAULT '',
            message       text NOT NULL DEFAULT '',
            report        jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (model_id, version),
            FOREIGN KEY (model_id, version) REFERENCES model_versions ON DELETE CASCADE
        );
        -- What a worker looks at when it claims: only unfinished jobs, oldest first.
        CREATE INDEX validation_jobs_open ON validation_jobs (create_time)
            WHERE state IN ('PENDING', 'RUNNING');

        INSERT INTO validation_jobs (model_id, version, tenant_id, create_time)
            SELECT model_id, version, tenant_id, create_time FROM model_versions;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE validation_jobs;
        ALTER TABLE model_versions
            DROP COLUMN evaluation_key,
            DROP COLUMN evaluation_sha256,
            DROP COLUMN evaluation_size_bytes,
            DROP COLUMN evaluation_label_column;
        """
    )

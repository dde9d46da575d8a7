"""Approval requests and the transactional outbox.

One open request per version (a partial unique index), decisions recorded with
the artifact SHA-256 they approved, and events written in the same transaction
as the state change they announce.

Revision ID: 0004
Revises: 0003
"""

from services.db.sql_script import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE approval_requests (
            approval_id      uuid PRIMARY KEY,
            tenant_id        text NOT NULL,
            model_id         uuid NOT NULL,
            version          bigint NOT NULL,
            state            text NOT NULL CHECK (state IN ('OPEN', 'APPROVED', 'REJECTED',
                                                            'CANCELLED')),
            submitted_by     text NOT NULL,
            submit_comment   text NOT NULL DEFAULT '',
            submit_time      timestamptz NOT NULL DEFAULT now(),
            decided_by       text,
            decision_comment text NOT NULL DEFAULT '',
            decide_time      timestamptz,
            sha256           text NOT NULL,
            FOREIGN KEY (model_id, version) REFERENCES model_versions
        );
        CREATE UNIQUE INDEX approval_one_open_per_version
            ON approval_requests (model_id, version) WHERE state = 'OPEN';
        CREATE INDEX approval_tenant_state ON approval_requests (tenant_id, state, submit_time);

        CREATE TABLE outbox_events (
            event_pk          bigserial PRIMARY KEY,
            event_id          uuid NOT NULL UNIQUE,
            tenant_id         text NOT NULL,
            model_id          uuid NOT NULL,
            event_type        text NOT NULL,
            payload           jsonb NOT NULL,
            create_time       timestamptz NOT NULL DEFAULT now(),
            attempts          integer NOT NULL DEFAULT 0,
            next_attempt_time timestamptz NOT NULL DEFAULT now(),
            delivered_time    timestamptz,
            last_error        text
        );
        CREATE INDEX outbox_pending ON outbox_events (next_attempt_time)
            WHERE delivered_time IS NULL;
        """
    )


def downgrade() -> None:
    execute_script("DROP TABLE outbox_events, approval_requests")

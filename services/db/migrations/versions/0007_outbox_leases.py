"""Outbox leases: relays claim events for a while instead of locking them while they post.

A relay (one per ModelRegistry replica) writes `lease_owner` and `lease_expires` on the
events it claims, in a short statement, then posts them holding no lock or connection, and
marks each delivered only while the lease is still its own. A relay that dies leaves its
leases to run out; another relay then takes the events over.

Revision ID: 0007
Revises: 0006
"""

from services.db.sql_script import execute_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE outbox_events
            ADD COLUMN lease_owner   text,
            ADD COLUMN lease_expires timestamptz;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        ALTER TABLE outbox_events
            DROP COLUMN lease_owner,
            DROP COLUMN lease_expires;
        """
    )

"""Indexes for reading one model version's audit trail (`ListAuditEntries`).

A version's entries are found by their resource (`model/{id}/version/{n}`: uploads and
archives) or by the model id their detail carries (submissions and decisions, whose
resource is the approval); without these the read would scan the tenant's whole log.

Revision ID: 0005
Revises: 0004
"""

from services.db.sql_script import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        """
        CREATE INDEX audit_log_resource ON audit_log (tenant_id, resource);
        CREATE INDEX audit_log_model ON audit_log (tenant_id, (detail->>'modelId'));
        """
    )


def downgrade() -> None:
    execute_script("DROP INDEX audit_log_model, audit_log_resource")

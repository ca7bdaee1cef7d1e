"""audit log append-only: the database refuses UPDATE and DELETE on audit_entries

Revision ID: f0f8fa8cc287
Revises: c4e1f0a27d3b
Create Date: 2026-11-29 20:17:19.417984

The audit log (Configurações › Auditoria) is append-only. The code only inserts, but the rule
now holds in the database itself, whoever connects: a trigger refuses every UPDATE and DELETE
of a row of audit_entries (and, on PostgreSQL, TRUNCATE), with an error naming the rule. Only
dropping the trigger (a migration, by the table's owner) lifts it.
"""
from alembic import op

revision = 'f0f8fa8cc287'
down_revision = 'c4e1f0a27d3b'
branch_labels = None
depends_on = None

MESSAGE = "audit_entries is append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP USING ERRCODE = 'restrict_violation';
            END
            $$""")
        op.execute("CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
                   "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()")
        op.execute("CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()")
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER audit_entries_no_{operation.lower()} BEFORE {operation} ON audit_entries "
                   f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {operation} refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries")
        op.execute("DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries")
        op.execute("DROP FUNCTION IF EXISTS audit_entries_append_only()")
        return
    op.execute("DROP TRIGGER IF EXISTS audit_entries_no_update")
    op.execute("DROP TRIGGER IF EXISTS audit_entries_no_delete")

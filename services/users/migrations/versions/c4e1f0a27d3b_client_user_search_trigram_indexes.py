"""client user search: trigram indexes (PostgreSQL only)

Revision ID: c4e1f0a27d3b
Revises: b7baaa96a3b8
Create Date: 2026-11-28 06:10:00.000000

The staff list (queries._client_users_query) searches with
`lower(name) LIKE '%q%' OR lower(email) LIKE '%q%'`, which no B-tree can serve: at 100k client
users in one firm every search read every row of the firm. On PostgreSQL, pg_trgm GIN indexes
on exactly those two expressions let the planner answer with a BitmapOr of two index scans.

On SQLite (development, tests) this revision does nothing: there are no trigram indexes there.
models.py declares both indexes (postgresql_using="gin", postgresql_ops gin_trgm_ops) so that
alembic's compare on PostgreSQL finds them in the model; on SQLite alembic skips
expression-based indexes declared in the model ("can't reflect these indexes"), so the absence
of the indexes there is not reported as a difference. Both are expression indexes on purpose
(a plain `email` index would be reported missing on SQLite).
"""
from alembic import op

revision = 'c4e1f0a27d3b'
down_revision = 'b7baaa96a3b8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX IF NOT EXISTS ix_client_users_name_trgm ON client_users "
               "USING gin (lower(name) gin_trgm_ops)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_client_users_email_trgm ON client_users "
               "USING gin (lower(email) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_client_users_email_trgm")
    op.execute("DROP INDEX IF EXISTS ix_client_users_name_trgm")
    # pg_trgm stays: other objects may use it, and it is harmless

"""company search: trigram indexes; no GIN fast update on the search indexes (PostgreSQL only)

Revision ID: ca170f5d95ae
Revises: 367dbcd6b20b
Create Date: 2026-11-29 23:55:00.000000

Configurações › Empresas searches (queries.companies_page) with
`lower(name) LIKE '%q%' OR lower(trade_name) LIKE '%q%' OR lower(code) LIKE '%q%'` and, for a
CNPJ or part of one, `cnpj LIKE '%q%'`, which no B-tree can serve: at 5,000 companies in a firm
every search read every company of the firm (EXPLAIN ANALYZE of a search nothing matches: a
sequential scan, 5,000 rows removed by the filter, 7.4 ms; with these indexes a BitmapOr of
the four, 0.06 ms). As for the client users' search (revision c4e1f0a27d3b): pg_trgm GIN
indexes on exactly those expressions, declared in models.py; nothing on SQLite.

All six trigram indexes (these four and the client users' two) go without GIN's fast update:
with it, new rows wait in a pending list until a VACUUM, every search reads that whole list, and
after a bulk load (an import of 5,000 companies) the planner's estimate of it makes it prefer a
sequential scan (measured: 3.9 ms instead of 0.08 ms until the next VACUUM). Without it each
insert updates the indexes at once (5,000 companies inserted in 2.6 s instead of about 1 s).
"""
from alembic import op

revision = 'ca170f5d95ae'
down_revision = '367dbcd6b20b'
branch_labels = None
depends_on = None

INDEXES = {
    "ix_companies_name_trgm": "lower(name)",
    "ix_companies_trade_name_trgm": "lower(trade_name)",
    "ix_companies_code_trgm": "lower(code)",
    "ix_companies_cnpj_trgm": "lower(cnpj)",
}


CLIENT_USER_INDEXES = ("ix_client_users_name_trgm", "ix_client_users_email_trgm")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON companies USING gin ({expression} gin_trgm_ops) "
                   "WITH (fastupdate = off)")
    for name in CLIENT_USER_INDEXES:
        op.execute(f"ALTER INDEX {name} SET (fastupdate = off)")
        op.execute(f"SELECT gin_clean_pending_list('{name}'::regclass)")  # what was waiting goes in now


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in CLIENT_USER_INDEXES:
        op.execute(f"ALTER INDEX {name} RESET (fastupdate)")
    for name in reversed(INDEXES):
        op.execute(f"DROP INDEX IF EXISTS {name}")

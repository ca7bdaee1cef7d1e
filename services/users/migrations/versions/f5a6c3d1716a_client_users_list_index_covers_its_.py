"""client users list index covers its search

Revision ID: f5a6c3d1716a
Revises: 277992836a52
Create Date: 2026-11-30 07:30:40.278378

The staff list (queries.client_users_page) orders a firm's client users by (name, id) and
filters them by name/e-mail fragment, status and CPF hash. (firm_id, name) made PostgreSQL walk
the index and fetch every wide heap row it passed (1,781 buffers to find a page of "silva" at
100k). (firm_id, name, id) INCLUDE (email, status, cpf_hash) lets the page's ids come from an
index-only scan that filters inside the index (37 buffers), the whole rows fetched for the page
only. SQLite ignores INCLUDE: there the index is (firm_id, name, id).

Whether PostgreSQL walks that index or takes the trigram indexes (c4e1f0a27d3b: right for a rare
fragment) depends on how many matches it expects. With the default statistics (a 100-entry
histogram of lower(email)) a fragment that 1 % of a firm matches was estimated from 20 to 1,018
rows depending on ANALYZE's sample, and the low guesses fetched all ~1,000 matches from the heap
to sort them. 1,000 entries on the two trigram indexes' expressions make the estimate steady
(PostgreSQL only; ANALYZE then samples 300,000 rows of client_users instead of 30,000).
"""
from alembic import op

revision = 'f5a6c3d1716a'
down_revision = '277992836a52'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('client_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_users_firm_name'))
        batch_op.create_index('ix_client_users_firm_name_id', ['firm_id', 'name', 'id'], unique=False, postgresql_include=['email', 'status', 'cpf_hash'])
    if op.get_bind().dialect.name == "postgresql":
        for index in ("ix_client_users_name_trgm", "ix_client_users_email_trgm"):
            op.execute(f"ALTER INDEX {index} ALTER COLUMN 1 SET STATISTICS 1000")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in ("ix_client_users_name_trgm", "ix_client_users_email_trgm"):
            op.execute(f"ALTER INDEX {index} ALTER COLUMN 1 SET STATISTICS -1")
    with op.batch_alter_table('client_users', schema=None) as batch_op:
        batch_op.drop_index('ix_client_users_firm_name_id', postgresql_include=['email', 'status', 'cpf_hash'])
        batch_op.create_index(batch_op.f('ix_client_users_firm_name'), ['firm_id', 'name'], unique=False)

"""companies: razão social, nome fantasia, CNPJ (numeric or alphanumeric) or CPF, código interno,
active; import jobs of a kind (client users or companies)

Revision ID: 668f8334289f
Revises: 9104980fe8be
Create Date: 2026-11-29 21:47:03.706254

Existing companies stay valid: `name` is their razão social, their CNPJ stays in `cnpj`
(document_kind "cnpj"), they are active. A person-company's CPF goes, encrypted, into `cpf` with
its keyed hash in `cpf_hash` (unique in the firm, as the CNPJ is); `cnpj` becomes nullable.
Existing import jobs are of kind "client_users".

SQLite cannot make a column nullable in place: the batch mode copies `companies` into a new table
and drops the old one, and with foreign keys on (services.common.db), dropping a table deletes its
rows first — which would cascade to every row that references a company (a client user's links).
So on SQLite the rows of the tables that reference `companies` are kept aside and put back.
"""
import sqlalchemy as sa
from alembic import op

revision = '668f8334289f'
down_revision = '9104980fe8be'
branch_labels = None
depends_on = None


def _tables_referencing_companies(bind) -> list[str]:
    names = [row[0] for row in bind.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return [name for name in names if name != "companies" and any(
        fk[2] == "companies" for fk in bind.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")'))]


def _recreating_companies(change) -> None:
    """Run `change` (a batch alteration of `companies`) without losing what references a company."""
    bind = op.get_bind()
    kept = _tables_referencing_companies(bind) if bind.dialect.name == "sqlite" else []
    for name in kept:
        bind.exec_driver_sql(f'CREATE TEMP TABLE "_keep_{name}" AS SELECT * FROM "{name}"')
    change()
    for name in kept:
        bind.exec_driver_sql(f'DELETE FROM "{name}"')
        bind.exec_driver_sql(f'INSERT INTO "{name}" SELECT * FROM "_keep_{name}"')
        bind.exec_driver_sql(f'DROP TABLE "_keep_{name}"')


def upgrade() -> None:
    def change():
        with op.batch_alter_table('companies', schema=None) as batch_op:
            batch_op.add_column(sa.Column('trade_name', sa.String(length=200), nullable=True))
            batch_op.add_column(sa.Column('document_kind', sa.String(length=4), server_default=sa.text("'cnpj'"),
                                          nullable=False))
            batch_op.add_column(sa.Column('cpf', sa.Text(), nullable=True))
            batch_op.add_column(sa.Column('cpf_hash', sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column('code', sa.String(length=30), nullable=True))
            batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False))
            batch_op.alter_column('cnpj', existing_type=sa.VARCHAR(length=14), nullable=True)
            batch_op.create_index('ix_companies_firm_active_name', ['firm_id', 'active', 'name'], unique=False)
            batch_op.create_unique_constraint('uq_companies_firm_cpf_hash', ['firm_id', 'cpf_hash'])
    _recreating_companies(change)

    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), server_default=sa.text("'client_users'"),
                                      nullable=False))

    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trade_name', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('document', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('code', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('company_id', sa.Uuid(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM companies WHERE cnpj IS NULL")).scalar():
        raise RuntimeError("companies identified by a CPF exist: the previous schema has no place for them")
    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.drop_column('company_id')
        batch_op.drop_column('code')
        batch_op.drop_column('document')
        batch_op.drop_column('trade_name')

    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('kind')

    def change():
        with op.batch_alter_table('companies', schema=None) as batch_op:
            batch_op.drop_constraint('uq_companies_firm_cpf_hash', type_='unique')
            batch_op.drop_index('ix_companies_firm_active_name')
            batch_op.alter_column('cnpj', existing_type=sa.VARCHAR(length=14), nullable=False)
            batch_op.drop_column('active')
            batch_op.drop_column('code')
            batch_op.drop_column('cpf_hash')
            batch_op.drop_column('cpf')
            batch_op.drop_column('document_kind')
            batch_op.drop_column('trade_name')
    _recreating_companies(change)

"""account security: audit log, ended sessions, preferences, encrypted personal data

Revision ID: b7baaa96a3b8
Revises: de6a43d5c0d8
Create Date: 2026-11-28 05:34:30.165835

Data migration: the CPF and phone values already stored in clear (client_users, import_rows)
are encrypted in place with the PII key and client_users.cpf_hash is filled. Values that
already carry the encrypted format's prefix are left alone (a re-run changes nothing).
"""
import sqlalchemy as sa
from alembic import op

revision = 'b7baaa96a3b8'
down_revision = 'de6a43d5c0d8'
branch_labels = None
depends_on = None

BATCH = 1000


def _encrypt_existing() -> None:
    from services.users import pii
    conn = op.get_bind()
    users = sa.table("client_users", sa.column("id", sa.Uuid()), sa.column("cpf", sa.Text()),
                     sa.column("phone", sa.Text()), sa.column("cpf_hash", sa.String(64)))
    people = conn.execute(sa.select(users.c.id, users.c.cpf, users.c.phone)
                          .where(sa.or_(users.c.cpf.is_not(None), users.c.phone.is_not(None)))).all()
    imports = sa.table("import_rows", sa.column("job_id", sa.Uuid()), sa.column("line", sa.Integer()),
                       sa.column("cpf", sa.Text()), sa.column("phone", sa.Text()))
    cells = conn.execute(sa.select(imports.c.job_id, imports.c.line, imports.c.cpf, imports.c.phone)
                         .where(sa.or_(imports.c.cpf != "", imports.c.phone != ""))).all()
    if not people and not cells:
        return  # nothing to encrypt: the PII key is not even loaded
    cipher = pii.cipher()
    for row in people:
        values = {}
        if row.cpf and not row.cpf.startswith(pii.PREFIX):
            values["cpf"] = cipher.encrypt(row.cpf, purpose="cpf")
            values["cpf_hash"] = cipher.search_hash(row.cpf, purpose="cpf")
        if row.phone and not row.phone.startswith(pii.PREFIX):
            values["phone"] = cipher.encrypt(row.phone, purpose="phone")
        if values:
            conn.execute(users.update().where(users.c.id == row.id).values(**values))
    for cell in cells:
        values = {}
        for column, purpose in (("cpf", "import_cpf"), ("phone", "import_phone")):
            value = getattr(cell, column)
            if value and not value.startswith(pii.PREFIX):
                values[column] = cipher.encrypt(value, purpose=purpose)
        if values:
            conn.execute(imports.update().where(imports.c.job_id == cell.job_id, imports.c.line == cell.line)
                         .values(**values))


def upgrade() -> None:
    op.create_table('audit_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('firm_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('actor_email', sa.String(length=320), nullable=False),
    sa.Column('target_id', sa.Uuid(), nullable=True),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('correlation_id', sa.String(length=100), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries'))
    )
    op.create_index('ix_audit_entries_firm_at', 'audit_entries', ['firm_id', 'at', 'id'], unique=False)

    op.create_table('ended_sessions',
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('identity_id', sa.Uuid(), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_hash', name=op.f('pk_ended_sessions'))
    )
    op.create_index(op.f('ix_ended_sessions_identity_id'), 'ended_sessions', ['identity_id'], unique=False)

    op.create_table('identity_preferences',
    sa.Column('identity_id', sa.Uuid(), nullable=False),
    sa.Column('default_firm_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['default_firm_id'], ['firms.id'], name=op.f('fk_identity_preferences_default_firm_id_firms'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('identity_id', name=op.f('pk_identity_preferences'))
    )
    op.add_column('client_users', sa.Column('cpf_hash', sa.String(length=64), nullable=True))
    op.add_column('client_users', sa.Column('inactive_reason', sa.String(length=20), nullable=True))
    op.create_index('ix_client_users_firm_cpf_hash', 'client_users', ['firm_id', 'cpf_hash'], unique=False)
    op.add_column('firms', sa.Column('require_staff_mfa', sa.Boolean(), server_default=sa.text('false'),
                                     nullable=False))
    # ciphertext is longer than the clear value (SQLite rebuilds the tables in batch mode)
    for table, columns in (("client_users", (("cpf", 11, True), ("phone", 20, True))),
                           ("import_rows", (("cpf", 100, False), ("phone", 100, False)))):
        with op.batch_alter_table(table) as batch_op:
            for column, length, nullable in columns:
                batch_op.alter_column(column, existing_type=sa.String(length), type_=sa.Text(),
                                      existing_nullable=nullable)
    _encrypt_existing()


def downgrade() -> None:
    # the encrypted values stay encrypted: decrypt them with the key before downgrading further
    op.drop_column('firms', 'require_staff_mfa')
    op.drop_index('ix_client_users_firm_cpf_hash', table_name='client_users')
    op.drop_column('client_users', 'inactive_reason')
    op.drop_column('client_users', 'cpf_hash')
    op.drop_table('identity_preferences')
    op.drop_index(op.f('ix_ended_sessions_identity_id'), table_name='ended_sessions')
    op.drop_table('ended_sessions')
    op.drop_index('ix_audit_entries_firm_at', table_name='audit_entries')
    op.drop_table('audit_entries')

"""staff members (Configurações › Equipe): invited by e-mail, a status, departments and a carteira

A staff member now exists from the invitation (`identity_id` empty until it is accepted), with a
status instead of `active` (active → "active", otherwise "inactive"), the invitation's delivery
state (as client users have), departments and a carteira (the companies a Colaborador serves).
An invitation reference names a client user or a staff member.

So that nobody loses sight of what they saw the moment before the upgrade, every existing
Colaborador (role "staff") gets a carteira of every company of their firm (an Administrador sees
all companies whatever the carteira holds).

Revision ID: e7f423b3489c
Revises: 7de8c26be368
Create Date: 2026-11-29 21:56:10.539691
"""
import sqlalchemy as sa
from alembic import op

revision = 'e7f423b3489c'
down_revision = '7de8c26be368'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_member_companies',
    sa.Column('staff_member_id', sa.Uuid(), nullable=False),
    sa.Column('company_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_staff_member_companies_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_member_id'], ['staff_members.id'], name=op.f('fk_staff_member_companies_staff_member_id_staff_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('staff_member_id', 'company_id', name=op.f('pk_staff_member_companies'))
    )
    with op.batch_alter_table('staff_member_companies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_member_companies_company_id'), ['company_id'], unique=False)

    op.create_table('staff_member_departments',
    sa.Column('staff_member_id', sa.Uuid(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_staff_member_departments_department_id_departments')),
    sa.ForeignKeyConstraint(['staff_member_id'], ['staff_members.id'], name=op.f('fk_staff_member_departments_staff_member_id_staff_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('staff_member_id', 'department_id', name=op.f('pk_staff_member_departments'))
    )
    with op.batch_alter_table('staff_member_departments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_member_departments_department_id'), ['department_id'], unique=False)

    with op.batch_alter_table('invitation_refs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('staff_member_id', sa.Uuid(), nullable=True))
        batch_op.alter_column('client_user_id', existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index(batch_op.f('ix_invitation_refs_staff_member_id'), ['staff_member_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_invitation_refs_staff_member_id_staff_members'), 'staff_members', ['staff_member_id'], ['id'])

    with op.batch_alter_table('staff_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=20), server_default='active', nullable=False))
        batch_op.add_column(sa.Column('inactive_reason', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False))
        batch_op.add_column(sa.Column('invitation_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('invitation_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('invitation_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('invitation_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('invitation_sealed_link', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivery_error', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('delivery_error_permanent', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('link_refused_reason', sa.String(length=50), nullable=True))
        batch_op.alter_column('identity_id', existing_type=sa.Uuid(), nullable=True)

    staff = sa.table('staff_members', sa.column('id', sa.Uuid()), sa.column('firm_id', sa.Uuid()),
                     sa.column('role', sa.String()), sa.column('active', sa.Boolean()), sa.column('status', sa.String()))
    companies = sa.table('companies', sa.column('id', sa.Uuid()), sa.column('firm_id', sa.Uuid()))
    carteira = sa.table('staff_member_companies', sa.column('staff_member_id', sa.Uuid()),
                        sa.column('company_id', sa.Uuid()))
    op.execute(staff.update().where(staff.c.active.is_(False)).values(status='inactive'))

    with op.batch_alter_table('staff_members', schema=None) as batch_op:
        batch_op.create_index('uq_staff_members_firm_email_live', ['firm_id', 'email'], unique=True, sqlite_where=sa.text("status != 'deleted'"), postgresql_where=sa.text("status != 'deleted'"))
        batch_op.drop_column('active')

    # after the last rebuild of staff_members (on SQLite a batch copies and drops the table, which
    # would cascade to rows referencing it)
    op.execute(carteira.insert().from_select(
        ['staff_member_id', 'company_id'],
        sa.select(staff.c.id, companies.c.id).select_from(staff.join(companies, companies.c.firm_id == staff.c.firm_id))
        .where(staff.c.role == 'staff')))


def downgrade() -> None:
    with op.batch_alter_table('staff_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.false(), nullable=False))
    staff = sa.table('staff_members', sa.column('active', sa.Boolean()), sa.column('status', sa.String()),
                     sa.column('identity_id', sa.Uuid()))
    op.execute(staff.update().where(staff.c.status == 'active').values(active=True))
    # invitations not accepted yet, and removed members, have no place in the old schema
    op.execute(sa.text("DELETE FROM invitation_refs WHERE staff_member_id IS NOT NULL"))
    op.execute(sa.text("DELETE FROM staff_member_companies WHERE staff_member_id IN "
                       "(SELECT id FROM staff_members WHERE identity_id IS NULL)"))
    op.execute(sa.text("DELETE FROM staff_member_departments WHERE staff_member_id IN "
                       "(SELECT id FROM staff_members WHERE identity_id IS NULL)"))
    op.execute(sa.text("DELETE FROM staff_members WHERE identity_id IS NULL"))
    with op.batch_alter_table('staff_members', schema=None) as batch_op:
        batch_op.drop_index('uq_staff_members_firm_email_live', sqlite_where=sa.text("status != 'deleted'"), postgresql_where=sa.text("status != 'deleted'"))
        batch_op.alter_column('identity_id', existing_type=sa.Uuid(), nullable=False)
        for column in ('link_refused_reason', 'delivery_error_permanent', 'delivery_error', 'invitation_sealed_link',
                       'invitation_requested_at', 'invitation_expires_at', 'invitation_sent_at', 'invitation_id',
                       'updated_at', 'created_at', 'inactive_reason', 'status'):
            batch_op.drop_column(column)

    with op.batch_alter_table('invitation_refs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_invitation_refs_staff_member_id_staff_members'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_invitation_refs_staff_member_id'))
        batch_op.alter_column('client_user_id', existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column('staff_member_id')

    with op.batch_alter_table('staff_member_departments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_member_departments_department_id'))
    op.drop_table('staff_member_departments')
    with op.batch_alter_table('staff_member_companies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_member_companies_company_id'))
    op.drop_table('staff_member_companies')

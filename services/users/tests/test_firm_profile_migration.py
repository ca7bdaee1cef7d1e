"""The firm profile migration keeps what exists: a firm's name becomes both its display name and
its Razão social, with no logo, no Reply-To of its own and revision 0; and it goes back down."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from services.users import models
from services.users.tests.conftest import make_cnpj
from services.users.tests.test_companies_migration import _alembic, _database

BEFORE = "e7f423b3489c"  # the users head before Configurações › Escritório


def test_an_existing_firm_keeps_its_name_as_display_and_legal_name(tmp_path):
    from alembic import command
    database = _database(tmp_path)
    cfg = _alembic(database)
    command.upgrade(cfg, BEFORE)
    firm_id = uuid.uuid4()
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO firms (id, name, slug, cnpj, created_at, require_staff_mfa) "
                          "VALUES (:id, 'Contabilidade Alfa Ltda', 'contabilidade-alfa', :cnpj, :now, false)"),
                     {"id": firm_id.hex, "cnpj": make_cnpj(1), "now": datetime.now(UTC)})
    command.upgrade(cfg, "head")
    with database.begin() as s:
        firm = s.get(models.Firm, firm_id)
        assert (firm.name, firm.legal_name, firm.razao_social) == ("Contabilidade Alfa Ltda",) * 3
        assert (firm.reply_to, firm.logo_digest, firm.profile_revision) == (None, None, 0)
    command.downgrade(cfg, BEFORE)
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM firms")).scalar() == "Contabilidade Alfa Ltda"
        assert "legal_name" not in {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(firms)")}
    database.dispose()

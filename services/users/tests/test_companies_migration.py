"""The companies migration keeps what exists: names become the razão social, CNPJs stay, every
company is active and keeps its client users' links (SQLite rebuilds the table to make `cnpj`
nullable; with foreign keys on, that must not cascade to the links)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from services.users import models
from services.users.tests.conftest import make_cnpj

BEFORE = "f0f8fa8cc287"  # the users head before Empresas


def _alembic(database):
    from alembic.config import Config as AlembicConfig
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(models.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = database
    return cfg


def _database(tmp_path):
    """Always SQLite (the embedded mode's database): its table rebuild is what this checks;
    PostgreSQL alters the column in place (test_migrations checks the schema there)."""
    from services.common.db import Database
    return Database(f"sqlite:///{tmp_path / 'users-migration.sqlite3'}", service="users")


def test_existing_companies_stay_valid_and_keep_their_links(tmp_path):
    from alembic import command
    database = _database(tmp_path)
    cfg = _alembic(database)
    command.upgrade(cfg, BEFORE)
    firm_id, company_id, cu_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO firms (id, name, slug, cnpj, created_at, require_staff_mfa) "
                          "VALUES (:id, 'F', 'f', :cnpj, :now, false)"),
                     {"id": firm_id.hex, "cnpj": make_cnpj(1), "now": now})
        conn.execute(text("INSERT INTO companies (id, firm_id, name, cnpj) VALUES (:id, :f, 'Padaria Ltda', :c)"),
                     {"id": company_id.hex, "f": firm_id.hex, "c": make_cnpj(5)})
        conn.execute(text("INSERT INTO client_users (id, firm_id, name, email, status, created_at, updated_at) "
                          "VALUES (:id, :f, 'Ana B', 'a@b.example', 'not_invited', :now, :now)"),
                     {"id": cu_id.hex, "f": firm_id.hex, "now": now})
        conn.execute(text("INSERT INTO client_user_companies (client_user_id, company_id) VALUES (:u, :c)"),
                     {"u": cu_id.hex, "c": company_id.hex})
    command.upgrade(cfg, "head")
    with database.begin() as s:
        company = s.get(models.Company, company_id)
        assert (company.name, company.cnpj, company.document_kind, company.active) == \
               ("Padaria Ltda", make_cnpj(5), "cnpj", True)
        assert company.trade_name is None and company.cpf is None and company.code is None
        assert [c.id for c in s.get(models.ClientUser, cu_id).companies] == [company_id]
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    command.downgrade(cfg, BEFORE)
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM client_user_companies")).scalar() == 1
    database.dispose()

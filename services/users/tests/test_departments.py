"""Configurações › Departamentos: a new firm's five departments; admins add, rename and remove
them (Migrar e excluir); names unique in the firm; events and audit entries; another firm's
departments and non-admin staff get 404."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from services.common.events import CATALOGUE
from services.users import models, queries, services
from testsupport import count_queries, csrf_token

from .conftest import Person, login, outbox_events, text_of, users_db

ANA_ACTOR = services.Actor(None, "Ana Lima", "ana@alfa.com.br")


def _url(firm, rest: str = "") -> str:
    return f"/e/{firm.slug}/configuracoes/departamentos{rest}"


def _names(config, firm) -> list[str]:
    with users_db(config).begin() as s:
        return [d.name for d in queries.departments_of(s, firm=firm)]


def _department(config, firm, name) -> models.Department:
    with users_db(config).begin() as s:
        return next(d for d in queries.departments_of(s, firm=firm) if d.name == name)


def _post(client, url, data, page_url=None):
    page = client.get(page_url or url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_token(page), **data})


def test_a_new_firm_starts_with_the_five_departments_and_announces_them(config, world):
    assert _names(config, world.alfa) == ["Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"]
    created = [e["payload"] for e in outbox_events(config, "department.created")
               if e["payload"]["firm_id"] == str(world.alfa.id)]
    assert [p["name"] for p in created] == ["Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"]
    assert [p["position"] for p in created] == [0, 1, 2, 3, 4]
    for payload in created:  # what a consumer's schema accepts
        CATALOGUE["department.created"].schema().load(payload)


def test_the_list_shows_them_in_order_with_a_constant_number_of_statements(browser_client, config, world):
    login(browser_client, config, world.ana)
    browser_client.get(_url(world.alfa))
    with count_queries(config, "users") as few:
        html = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    assert re.findall(r'name="name" type="text" maxlength="80" required value="([^"]+)"', html) == [
        "Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"]
    with users_db(config).begin() as s:
        for i in range(10):
            services.add_department(s, firm=world.alfa, name=f"Área {i}")
    with count_queries(config, "users") as many:
        html = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    assert "Área 9" in html and few.count == many.count


def test_admin_adds_a_department_and_it_is_audited_and_announced(browser_client, config, world):
    login(browser_client, config, world.ana)
    response = _post(browser_client, _url(world.alfa), {"name": "  Recursos   Humanos "})
    assert response.status_code == 303
    assert _names(config, world.alfa)[-1] == "Recursos Humanos"
    assert "Departamento Recursos Humanos criado." in text_of(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    [event] = [e for e in outbox_events(config, "department.created") if e["payload"]["name"] == "Recursos Humanos"]
    assert event["payload"]["position"] == 5
    with users_db(config).begin() as s:
        entry = s.scalar(select(models.AuditEntry).where(models.AuditEntry.action == "department.created"))
        assert entry.target_name == "Recursos Humanos" and entry.actor_email == world.ana.email
        assert entry.firm_id == world.alfa.id


@pytest.mark.parametrize("name, message", [
    ("fiscal", "Já existe um departamento com este nome."),
    ("   ", "Informe"),
    ("x" * 81, "80 caracteres"),
    ("Fis\x00cal", "caracteres de controle"),
])
def test_a_bad_name_is_refused_and_nothing_is_added(browser_client, config, world, name, message):
    login(browser_client, config, world.ana)
    before = _names(config, world.alfa)
    response = _post(browser_client, _url(world.alfa), {"name": name})
    assert response.status_code == 422 and message in text_of(response.get_data(as_text=True))
    assert _names(config, world.alfa) == before


def test_the_same_name_is_fine_at_another_firm(config, world):
    with users_db(config).begin() as s:
        services.add_department(s, firm=world.beta, name="Auditoria Interna")
        services.add_department(s, firm=world.alfa, name="Auditoria Interna")
    assert "Auditoria Interna" in _names(config, world.alfa) and "Auditoria Interna" in _names(config, world.beta)


def test_admin_renames_a_department(browser_client, config, world):
    login(browser_client, config, world.ana)
    fiscal = _department(config, world.alfa, "Fiscal")
    response = _post(browser_client, _url(world.alfa, f"/{fiscal.id}/renomear"), {"name": "Fiscal e Tributário"},
                     page_url=_url(world.alfa))
    assert response.status_code == 303
    assert "Fiscal e Tributário" in _names(config, world.alfa) and "Fiscal" not in _names(config, world.alfa)
    [event] = outbox_events(config, "department.renamed")
    assert event["payload"]["department_id"] == str(fiscal.id) and event["payload"]["name"] == "Fiscal e Tributário"
    clash = _post(browser_client, _url(world.alfa, f"/{fiscal.id}/renomear"), {"name": "PESSOAL"},
                  page_url=_url(world.alfa))
    assert clash.status_code == 422 and "Já existe um departamento com este nome." in text_of(clash.get_data(as_text=True))
    assert 'value="PESSOAL"' in clash.get_data(as_text=True)  # what was typed stays in the field


def test_migrar_e_excluir_moves_to_the_chosen_department(browser_client, config, world):
    login(browser_client, config, world.ana)
    pessoal, contabil = _department(config, world.alfa, "Pessoal"), _department(config, world.alfa, "Contábil")
    with users_db(config).begin() as s:  # a Colaborador of Pessoal
        paula = services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=uuid.uuid4(),
                                          name="Paula Reis", email="paula@alfa.com.br", department_ids=[pessoal.id]).id
    page = browser_client.get(_url(world.alfa, f"/{pessoal.id}/excluir"))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Migrar e excluir" in html
    assert f'<option value="{pessoal.id}"' not in html and f'<option value="{contabil.id}"' in html
    response = browser_client.post(_url(world.alfa, f"/{pessoal.id}/excluir"),
                                   data={"csrf_token": csrf_token(html), "move_to": str(contabil.id)})
    assert response.status_code == 303
    assert "Pessoal" not in _names(config, world.alfa)
    [event] = outbox_events(config, "department.removed")
    assert event["payload"] == {"firm_id": str(world.alfa.id), "department_id": str(pessoal.id),
                                "moved_to_id": str(contabil.id)}
    with users_db(config).begin() as s:
        row = s.get(models.Department, pessoal.id)
        assert row.removed_at is not None and row.moved_to_id == contabil.id  # kept for history
        assert [d.id for d in s.get(models.StaffMember, paula).departments] == [contabil.id]  # staff moved
        services.add_department(s, firm=world.alfa, name="Pessoal")  # the name is free again


def test_removal_refuses_moving_to_itself_another_firms_or_no_department(browser_client, config, world):
    login(browser_client, config, world.ana)
    fiscal = _department(config, world.alfa, "Fiscal")
    beta_fiscal = _department(config, world.beta, "Fiscal")
    for move_to in (str(fiscal.id), str(beta_fiscal.id), str(uuid.uuid4()), "não-é-um-id", ""):
        response = _post(browser_client, _url(world.alfa, f"/{fiscal.id}/excluir"), {"move_to": move_to})
        assert response.status_code == 422, move_to
        assert "Escolha o departamento que recebe o que este contém." in text_of(response.get_data(as_text=True))
    assert "Fiscal" in _names(config, world.alfa) and outbox_events(config, "department.removed") == []


def test_the_last_department_cannot_be_removed(browser_client, config, world):
    login(browser_client, config, world.ana)
    with users_db(config).begin() as s:
        departments = queries.departments_of(s, firm=world.alfa)
        for department in departments[1:]:
            services.remove_department(s, firm=world.alfa, department=department, move_to=departments[0],
                                       actor=ANA_ACTOR)
    last = departments[0]
    html = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    assert "O único departamento não pode ser excluído." in text_of(html)
    response = _post(browser_client, _url(world.alfa, f"/{last.id}/excluir"), {"move_to": str(last.id)})
    assert response.status_code in (409, 422)
    assert _names(config, world.alfa) == [last.name]


def test_another_firms_departments_and_non_admins_get_404(browser_client, config, world):
    beta_fiscal = _department(config, world.beta, "Fiscal")
    login(browser_client, config, world.ana)
    page = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    for method, path in (("GET", _url(world.alfa, f"/{beta_fiscal.id}/excluir")),
                         ("POST", _url(world.alfa, f"/{beta_fiscal.id}/excluir")),
                         ("POST", _url(world.alfa, f"/{beta_fiscal.id}/renomear")),
                         ("GET", _url(world.beta)), ("POST", _url(world.beta))):
        response = browser_client.open(path, method=method, data={"csrf_token": csrf_token(page), "name": "X",
                                                                   "move_to": str(beta_fiscal.id)})
        assert response.status_code == 404, path
    assert "Fiscal" in _names(config, world.beta) and "X" not in _names(config, world.beta)

    paula = Person(uuid.uuid4(), "paula@alfa.com.br", "Paula Reis")  # Alfa's staff, not an admin
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=world.alfa, identity_id=paula.identity_id, name=paula.name,
                                  email=paula.email)
    login(browser_client, config, paula)
    assert browser_client.get(_url(world.alfa)).status_code == 404
    login(browser_client, config, world.carlos)  # a client of the firm
    assert browser_client.get(_url(world.alfa)).status_code == 404


def test_the_pages_speak_english_when_chosen(browser_client, config, world):
    login(browser_client, config, world.ana)
    browser_client.get("/idioma/en?next=/")
    fiscal = _department(config, world.alfa, "Fiscal")
    text = text_of(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    assert "Add department" in text and "Rename" in text and "Actions" in text and "Adicionar" not in text
    text = text_of(browser_client.get(_url(world.alfa, f"/{fiscal.id}/excluir")).get_data(as_text=True))
    assert "Move and remove" in text and "Move its contents to" in text and "Migrar" not in text


def test_firms_that_existed_before_departments_get_the_five(tmp_path):
    """The migration that brings departments gives every existing firm the defaults."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    from services.common.db import Database
    database = Database(f"sqlite:///{tmp_path / 'users.sqlite3'}", service="users")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(models.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = database
    command.upgrade(cfg, "f0f8fa8cc287")  # the revision before departments
    firm_id = uuid.uuid4()
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO firms (id, name, slug, cnpj, created_at, require_staff_mfa) "
                          "VALUES (:id, 'Contabilidade Antiga', 'contabilidade-antiga', '11222333000181', "
                          "CURRENT_TIMESTAMP, 0)"), {"id": firm_id.hex})
    command.upgrade(cfg, "9104980fe8be")
    with database.engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM departments WHERE firm_id = :id ORDER BY position"),
                             {"id": firm_id.hex}).scalars().all()
    database.dispose()
    assert names == ["Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"]


def test_migrar_e_excluir_moves_client_users_access_keeping_the_higher_level(config, world):
    """Pessoal → Contábil: who saw only Pessoal now sees Contábil at the same level; who saw both
    keeps the higher of the two levels; who never saw Pessoal is untouched (and gets no event)."""
    d = {x.name: x for x in (_department(config, world.alfa, n) for n in ("Contábil", "Pessoal", "Fiscal"))}
    with users_db(config).begin() as s:
        def user(email, levels):
            return services.register_client_user(s, firm=world.alfa, name="Pessoa Teste", email=email,
                                                 departments={d[n].id: lv for n, lv in levels.items()}).id
        only_pessoal = user("a@example.com", {"Pessoal": "owner", "Fiscal": "reviewer"})
        higher_in_pessoal = user("b@example.com", {"Pessoal": "contributor", "Contábil": "reviewer"})
        higher_in_contabil = user("c@example.com", {"Pessoal": "reviewer", "Contábil": "owner"})
        untouched = user("d@example.com", {"Fiscal": "contributor"})
    before = len(outbox_events(config, "client_user.access_changed"))
    with users_db(config).begin() as s:
        services.remove_department(s, firm=world.alfa, department=s.get(models.Department, d["Pessoal"].id),
                                   move_to=s.get(models.Department, d["Contábil"].id), actor=ANA_ACTOR)

    def levels(client_user_id):
        with users_db(config).begin() as s:
            rows = s.scalars(select(models.ClientUserDepartment).where(
                models.ClientUserDepartment.client_user_id == client_user_id))
            return {s.get(models.Department, r.department_id).name: r.level for r in rows}
    assert levels(only_pessoal) == {"Contábil": "owner", "Fiscal": "reviewer"}
    assert levels(higher_in_pessoal) == {"Contábil": "contributor"}
    assert levels(higher_in_contabil) == {"Contábil": "owner"}
    assert levels(untouched) == {"Fiscal": "contributor"}
    # Carlos (every department, Revisor, from the data of a new user) lost Pessoal, kept Contábil
    assert "Pessoal" not in levels(world.carlos_at_alfa.id) and levels(world.carlos_at_alfa.id)["Contábil"] == "reviewer"

    moved = outbox_events(config, "client_user.access_changed")[before:]
    assert sorted(e["payload"]["client_user_id"] for e in moved) == sorted(
        str(i) for i in (only_pessoal, higher_in_pessoal, higher_in_contabil, world.carlos_at_alfa.id))
    for event in moved:
        assert event["payload"]["reason"] == "department_removed"
        assert str(d["Pessoal"].id) not in str(event["payload"])
    with users_db(config).begin() as s:
        entry = s.scalar(select(models.AuditEntry).where(models.AuditEntry.action == "department.removed"))
        assert entry.details == {"moved_to": "Contábil", "client_users_moved": 4}

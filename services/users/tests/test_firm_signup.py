"""The users side of Cadastre seu escritório: `firm_signup.confirmed` becomes a firm through the same
`create_firm` as `balcao create-firm` (default departments, the login as Administrador), with a
"firm.created" audit entry — once per sign-up, and never for a CNPJ that is already a firm's — and
the page the confirmation leads to waits for it, then opens the firm's home."""
from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy import func, select

from services.users import models, services
from services.users.views import signup as signup_view
from testsupport import build_gateway

from .conftest import Person, login, make_cnpj, outbox_events, users_db

GABRIELA = Person(uuid.uuid4(), "gabriela@gama.example", "Gabriela Dias")


def _signup(config, *, cnpj=None, person=GABRIELA, signup_id=None, name="Contabilidade Gama Ltda"):
    with users_db(config).begin() as s:
        outcome = services.create_firm_from_signup(
            s, signup_id=signup_id or uuid.uuid4(), identity_id=person.identity_id, legal_name=name,
            cnpj=cnpj or make_cnpj(77), admin_name=person.name, admin_email=person.email, ip="203.0.113.5")
        return outcome.signup_id, outcome.outcome, outcome.firm_id


def _count(config, model, *where) -> int:
    with users_db(config).begin() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_confirmed_signup_creates_the_firm_its_departments_and_its_administrador(config):
    signup_id, outcome, firm_id = _signup(config)
    assert outcome == "created"
    with users_db(config).begin() as s:
        firm = s.get(models.Firm, firm_id)
        assert (firm.name, firm.cnpj, firm.slug) == ("Contabilidade Gama Ltda", make_cnpj(77), "contabilidade-gama-ltda")
        [admin] = s.scalars(select(models.StaffMember).where(models.StaffMember.firm_id == firm_id)).all()
        assert (admin.identity_id, admin.role, admin.status, admin.name, admin.email) == (
            GABRIELA.identity_id, "admin", "active", "Gabriela Dias", "gabriela@gama.example")
        names = s.scalars(select(models.Department.name).where(models.Department.firm_id == firm_id)
                          .order_by(models.Department.position)).all()
        assert names == list(models.DEFAULT_DEPARTMENTS)
        [entry] = s.scalars(select(models.AuditEntry).where(models.AuditEntry.firm_id == firm_id)).all()
        assert (entry.action, entry.actor_id, entry.actor_name, entry.target_id, entry.ip, entry.details) == (
            "firm.created", GABRIELA.identity_id, "Gabriela Dias", firm_id, "203.0.113.5", {"via": "signup"})
    granted = outbox_events(config, "membership.granted")
    assert [(e["payload"]["identity_id"], e["payload"]["role"]) for e in granted] == [
        (str(GABRIELA.identity_id), "admin")]  # auth's staff-MFA projection learns of the new admin


def test_the_same_signup_twice_creates_one_firm(config):
    signup_id, first, firm_id = _signup(config)
    assert _signup(config, signup_id=signup_id, cnpj=make_cnpj(78), name="Outro Nome") == (signup_id, first, firm_id)
    assert _count(config, models.Firm) == 1
    assert _count(config, models.AuditEntry, models.AuditEntry.action == "firm.created") == 1


def test_a_cnpj_that_is_already_a_firm_s_creates_nothing(config, world):
    before = len(outbox_events(config))
    _signup_id, outcome, firm_id = _signup(config, cnpj=world.alfa.cnpj)
    assert (outcome, firm_id) == ("cnpj_taken", None)  # the page never names the other firm
    assert _count(config, models.Firm) == 2 and len(outbox_events(config)) == before
    assert _count(config, models.AuditEntry, models.AuditEntry.action == "firm.created") == 0
    # typed another way (the same 14 characters once clean): still that firm's
    formatted = f"{world.alfa.cnpj[:2]}.{world.alfa.cnpj[2:5]}.{world.alfa.cnpj[5:8]}/{world.alfa.cnpj[8:12]}-{world.alfa.cnpj[12:]}"
    assert _signup(config, cnpj=formatted)[1] == "cnpj_taken"


def test_the_firm_s_own_administrador_signing_it_up_again_is_sent_to_it(config, world):
    _signup_id, outcome, firm_id = _signup(config, cnpj=world.alfa.cnpj, person=world.ana)
    assert (outcome, firm_id) == ("already_member", world.alfa.id)


def test_balcao_create_firm_still_creates_firms_and_writes_no_signup_outcome(config):
    from services.provision import create_firm
    firm = create_firm(config, name="Contabilidade Delta", cnpj="12.ABC.345/01DE-35", admin_name="Davi Rocha",
                       admin_email="davi@delta.example", admin_password="Delta-Senha-Forte-44")
    assert firm["slug"] == "contabilidade-delta"
    assert _count(config, models.FirmSignupOutcome) == 0
    assert _count(config, models.StaffMember, models.StaffMember.role == "admin") == 1


# --------------------------------------------------------------------------- the page after the confirmation

def _client(config, *, open_=True):
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    dispatcher, _apps = build_gateway(dataclasses.replace(config, firm_signup=open_))
    return Client(dispatcher, Response, use_cookies=True)


def test_the_page_waits_then_opens_the_new_firm(config, monkeypatch):
    client = _client(config)
    login(client, config, GABRIELA)
    signup_id = uuid.uuid4()
    url = f"/cadastro-de-escritorio/{signup_id}"
    now = [1_000_000.0]
    monkeypatch.setattr(signup_view.time, "time", lambda: now[0])
    waiting = client.get(url)
    html = waiting.get_data(as_text=True)
    assert waiting.status_code == 200 and "Criando o seu escritório" in html and 'http-equiv="refresh"' in html
    now[0] += 59
    assert client.get(url).status_code == 200
    now[0] += 1
    slow = client.get(url)  # a minute without news: say so instead of refreshing forever
    assert slow.status_code == 503 and "ainda está sendo criado" in slow.get_data(as_text=True)
    _signup(config, signup_id=signup_id)
    done = client.get(url)
    slug = "contabilidade-gama-ltda"
    assert done.status_code == 303 and done.headers["Location"] == f"/e/{slug}/"
    assert "Você é o Administrador de Contabilidade Gama Ltda" in client.get(f"/e/{slug}/").get_data(as_text=True)


def test_the_page_says_when_the_cnpj_was_taken_and_names_no_firm(config, world):
    client = _client(config)
    login(client, config, GABRIELA)
    signup_id, _outcome, _firm = _signup(config, cnpj=world.beta.cnpj)
    refused = client.get(f"/cadastro-de-escritorio/{signup_id}")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "Já existe um escritório com este CNPJ" in html
    assert "Contabilidade Beta" not in html and world.bruno.email not in html


def test_the_page_is_404_for_another_login_and_when_signups_are_closed(config, world):
    signup_id, _outcome, _firm = _signup(config)
    client = _client(config)
    login(client, config, world.ana)
    assert client.get(f"/cadastro-de-escritorio/{signup_id}").status_code == 404
    assert client.get("/cadastro-de-escritorio/nao-e-um-id").status_code == 404
    closed = _client(config, open_=False)
    login(closed, config, GABRIELA)
    assert closed.get(f"/cadastro-de-escritorio/{signup_id}").status_code == 404


def test_the_page_keeps_one_statement_for_the_outcome(config):
    from services.users import queries
    from testsupport import count_queries
    signup_id, _outcome, _firm = _signup(config)
    with users_db(config).begin() as s, count_queries(config, "users") as counted:
        progress = queries.firm_signup_progress(s, signup_id=signup_id, identity_id=GABRIELA.identity_id)
    assert progress.state == "created" and progress.firm.name == "Contabilidade Gama Ltda"
    assert counted.count == 1

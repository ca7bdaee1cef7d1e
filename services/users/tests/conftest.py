"""Personas and helpers for the users service's tests: two firms (Alfa and Beta), their
admins (Ana, Bruno) and one person, Carlos, who is a client of both."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf

from services.common.keys import KeyRing
from services.common.runtime import database
from services.common.sessions import issue_session_token
from services.users import models, services


def make_cnpj(n: int) -> str:
    base = f"{n:08d}0001"
    return base + stdnum_cnpj.calc_check_digits(base)


def make_cpf(n: int) -> str:
    base = f"{n:09d}"
    return base + stdnum_cpf._calc_check_digits(base)


@dataclass
class Person:
    identity_id: uuid.UUID
    email: str
    name: str


def users_db(config):
    return database("users", config)


def outbox_events(config, event_type: str | None = None) -> list[dict]:
    with users_db(config).begin() as s:
        rows = s.execute(select(models.outbox.c.envelope).order_by(models.outbox.c.seq)).scalars().all()
    return [e for e in rows if event_type is None or e["type"] == event_type]


def login(client, config, person: Person) -> None:
    token = issue_session_token(KeyRing(config.keys_dir), identity_id=person.identity_id, email=person.email,
                                name=person.name)
    client.set_cookie("balcao_session", token)


def main_html(html: str) -> str:
    """The page's <main> (what the firm shows), without the header's own-firm selector."""
    match = re.search(r"<main.*?</main>", html, re.S)
    assert match
    return match.group(0)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def link_client(config, *, firm_id, client_user_id, identity_id) -> uuid.UUID:
    """Simulate the chain (invitation created → accepted) through the users service functions."""
    invitation_id = uuid.uuid4()
    with users_db(config).begin() as s:
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=firm_id,
                                           client_user_id=client_user_id,
                                           expires_at=datetime.now(UTC) + timedelta(days=7))
        assert services.grant_membership(s, firm_id=firm_id, client_user_id=client_user_id,
                                         identity_id=identity_id, invitation_id=invitation_id)
    return invitation_id


@pytest.fixture(autouse=True)
def _pii_key(config):
    """Personal data is encrypted with the test stack's PII key (the app does the same)."""
    from services.users import pii
    pii.configure(config)


@dataclass
class World:
    ana: Person
    bruno: Person
    carlos: Person
    alfa: models.Firm
    beta: models.Firm
    alfa_company: models.Company
    alfa_company2: models.Company
    beta_company: models.Company
    carlos_at_alfa: models.ClientUser
    carlos_at_beta: models.ClientUser


@pytest.fixture
def world(config) -> World:
    ana = Person(uuid.uuid4(), "ana@alfa.com.br", "Ana Lima")
    bruno = Person(uuid.uuid4(), "bruno@beta.com.br", "Bruno Reis")
    carlos = Person(uuid.uuid4(), "carlos@example.com", "Carlos Souza")
    with users_db(config).begin() as s:
        alfa = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(11), admin_identity_id=ana.identity_id,
                                    admin_name=ana.name, admin_email=ana.email)
        beta = services.create_firm(s, name="Contabilidade Beta", cnpj=make_cnpj(22),
                                    admin_identity_id=bruno.identity_id, admin_name=bruno.name,
                                    admin_email=bruno.email)
        alfa_company = services.create_company(s, firm=alfa, name="Padaria Pão Quente Ltda", cnpj=make_cnpj(101))
        alfa_company2 = services.create_company(s, firm=alfa, name="Mercado Central Ltda", cnpj=make_cnpj(102))
        beta_company = services.create_company(s, firm=beta, name="Oficina Motor Forte Ltda", cnpj=make_cnpj(201))
        cu_alfa = services.register_client_user(s, firm=alfa, name=carlos.name, email=carlos.email,
                                                company_ids=[alfa_company.id], access="now")
        cu_beta = services.register_client_user(s, firm=beta, name=carlos.name, email=carlos.email,
                                                company_ids=[beta_company.id], access="now")
    link_client(config, firm_id=alfa.id, client_user_id=cu_alfa.id, identity_id=carlos.identity_id)
    link_client(config, firm_id=beta.id, client_user_id=cu_beta.id, identity_id=carlos.identity_id)
    return World(ana, bruno, carlos, alfa, beta, alfa_company, alfa_company2, beta_company, cu_alfa, cu_beta)


def get_client_user(config, client_user_id) -> models.ClientUser:
    with users_db(config).begin() as s:
        return s.get(models.ClientUser, client_user_id)


def form_fields(html: str, action_contains: str = ""):
    """What a browser would submit from the page's form (the first POST form whose action contains
    `action_contains`): hidden and text inputs, checked checkboxes and radios, each select's
    selected option (else its first), no button. A werkzeug MultiDict, to change and post."""
    from html.parser import HTMLParser

    from werkzeug.datastructures import MultiDict

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.fields: list[tuple[str, str]] = []
            self.inside = self.done = False
            self.select: str | None = None
            self.options: list[tuple[str, bool]] = []

        def handle_starttag(self, tag, attrs):
            a = {k: (v or "") for k, v in attrs}
            if tag == "form" and not self.done and a.get("method", "").lower() == "post" \
                    and action_contains in a.get("action", ""):
                self.inside = True
            if not self.inside:
                return
            if tag == "input" and a.get("name"):
                kind = a.get("type", "text")
                if kind in ("checkbox", "radio"):
                    if "checked" in a:
                        self.fields.append((a["name"], a.get("value", "on")))
                elif kind not in ("submit", "button", "file"):
                    self.fields.append((a["name"], a.get("value", "")))
            elif tag == "select":
                self.select, self.options = a.get("name"), []
            elif tag == "option" and self.select:
                self.options.append((a.get("value", ""), "selected" in a))

        def handle_endtag(self, tag):
            if tag == "select" and self.select:
                chosen = [v for v, selected in self.options if selected] or [v for v, _ in self.options[:1]]
                self.fields += [(self.select, v) for v in chosen]
                self.select = None
            elif tag == "form" and self.inside:
                self.inside, self.done = False, True

    parser = Parser()
    parser.feed(html)
    return MultiDict(parser.fields)

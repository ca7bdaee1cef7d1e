"""Convidar colaborador runs the client users' invitation chain end to end (users → invitations →
notifier, auth's pages, link.verified → invitations → users → auth), carried in-process by `bus`:

* one login is a client at one firm and staff at another: Carlos, a client of Alfa, is invited to
  Beta's team, opens the e-mail, "já tem acesso" → Senha → Vincular Contas, and works at Beta as a
  Colaborador who sees his carteira only, while Alfa still knows him as a client;
* the firm's staff MFA policy applies to invited staff: no session opens before the enrolment, on
  the registration path and on the Vincular Contas path.
"""
from __future__ import annotations

import re
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select, text
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.auth import models as auth_models
from services.auth import services as auth_services
from services.common.runtime import database
from services.common.sessions import SESSION_COOKIE
from services.users import models, queries, services
from testsupport import build_gateway, csrf_token

from .conftest import link_client, main_html, make_cnpj, text_of, users_db

PASSWORDS = {"ana": "Ana-Alfa-Senha-91", "bruno": "Bruno-Beta-Senha-37", "carlos": "Carlos-Senha-Forte-58"}
EMAILS = {"ana": "ana@alfa.example", "bruno": "bruno@beta.example", "carlos": "carlos@cliente.example"}
NEW_PASSWORD = "Gisele-Senha-Forte-73"


@pytest.fixture
def people(config, bus):
    """Ana (admin of Alfa), Bruno (admin of Beta), Carlos (a client of Alfa): real logins in auth.
    Beta has two companies: Oficina (Eduardo's) and Mercado (Fernanda's)."""
    with database("auth", config).begin() as s:
        ids = {who: auth_services.register_identity(s, email=EMAILS[who], name=who.title() + " Silva",
                                                    password=PASSWORDS[who]).id for who in PASSWORDS}
    with users_db(config).begin() as s:
        alfa = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(11), admin_identity_id=ids["ana"],
                                    admin_name="Ana Silva", admin_email=EMAILS["ana"])
        beta = services.create_firm(s, name="Contabilidade Beta", cnpj=make_cnpj(22), admin_identity_id=ids["bruno"],
                                    admin_name="Bruno Silva", admin_email=EMAILS["bruno"])
        padaria = services.create_company(s, firm=alfa, name="Padaria Pão Quente Ltda", cnpj=make_cnpj(101))
        oficina = services.create_company(s, firm=beta, name="Oficina Motor Forte Ltda", cnpj=make_cnpj(201))
        mercado = services.create_company(s, firm=beta, name="Mercado Bom Preço Ltda", cnpj=make_cnpj(202))
        carlos = services.register_client_user(s, firm=alfa, name="Carlos Silva", email=EMAILS["carlos"],
                                               company_ids=[padaria.id])
        services.register_client_user(s, firm=beta, name="Eduardo Teixeira", email="eduardo@example.com",
                                      company_ids=[oficina.id])
        services.register_client_user(s, firm=beta, name="Fernanda Prado", email="fernanda@example.com",
                                      company_ids=[mercado.id])
        state = {"ids": ids, "alfa": alfa, "beta": beta, "oficina": oficina.id, "mercado": mercado.id}
    link_client(config, firm_id=state["alfa"].id, client_user_id=carlos.id, identity_id=ids["carlos"])
    bus.pump()
    return state


def browser(config) -> Client:
    dispatcher, _apps = build_gateway(config)
    return Client(dispatcher, Response, use_cookies=True)


def sets_session(response) -> bool:
    cookies = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        cookies.load(header)
    return any(name.endswith(SESSION_COOKIE) and morsel.value for name, morsel in cookies.items())


def sign_in(client, who):
    token = csrf_token(client.get("/auth/entrar").get_data(as_text=True))
    return client.post("/auth/entrar", data={"csrf_token": token, "email": EMAILS[who], "password": PASSWORDS[who]})


def invite(config, firm, *, by: str, name: str, email: str, role: str = "staff", company_ids=()):
    """The admin's Convidar colaborador, through the page."""
    client = browser(config)
    assert sign_in(client, by).status_code == 303
    url = f"/e/{firm.slug}/configuracoes/equipe/convidar"
    page = client.get(url).get_data(as_text=True)
    response = client.post(url, data={"csrf_token": csrf_token(page), "name": name, "email": email, "role": role,
                                      "company_ids": [str(c) for c in company_ids]})
    assert response.status_code == 303, text_of(response.get_data(as_text=True))


def emails_to(config, recipient: str) -> list[tuple[str, str]]:
    """(subject, text) of every invitation the notifier rendered for `recipient`, oldest first."""
    with database("notifier", config).begin() as s:
        return [(subject, body) for subject, body in s.execute(text(
            "SELECT subject, text_body FROM deliveries WHERE recipient = :r ORDER BY created_at"), {"r": recipient})
            if "convidou você" in subject]


def registre_agora(config, recipient: str) -> str:
    [(_subject, body)] = emails_to(config, recipient)
    [link] = re.findall(r"Registre agora: (\S+)", body)
    return urlsplit(link).path


def test_a_client_of_one_firm_joins_another_firms_team_with_vincular_contas(config, bus, people):
    beta = people["beta"]
    invite(config, beta, by="bruno", name="Carlos Silva", email=EMAILS["carlos"], company_ids=[people["oficina"]])
    bus.pump()
    [(subject, body)] = emails_to(config, EMAILS["carlos"])
    assert subject == "Contabilidade Beta convidou você para a equipe do escritório"
    assert "Registre agora:" in body and "Vincular Contas" in body
    carlos = browser(config)
    opened = carlos.get(registre_agora(config, EMAILS["carlos"]))
    assert opened.status_code == 303
    page = carlos.get(opened.headers["Location"]).get_data(as_text=True)
    assert "Você já tem acesso ao Portal do Cliente com o e-mail carlos@cliente.example." in page
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    linked = carlos.post("/auth/convite/vincular", data={"csrf_token": csrf_token(page), "ticket": ticket,
                                                        "password": PASSWORDS["carlos"]})
    assert linked.status_code == 303 and linked.headers["Location"].startswith("/vinculando/")
    assert sets_session(linked)
    bus.pump()  # link.verified → invitations → invitation.accepted → users → membership.granted → auth
    granted = [e["payload"] for e in bus.of_type("membership.granted")
               if e["payload"]["identity_id"] == str(people["ids"]["carlos"])]
    assert [(g["firm_name"], g["role"]) for g in granted][-1] == ("Contabilidade Beta", "staff")
    landing = carlos.get(linked.headers["Location"])
    assert landing.status_code == 303 and landing.headers["Location"] == f"/e/{beta.slug}/"
    # at Beta: a Colaborador who sees the client users of his carteira only
    clients = main_html(carlos.get(f"/e/{beta.slug}/configuracoes/usuarios-de-clientes").get_data(as_text=True))
    assert "Eduardo Teixeira" in clients and "Fernanda Prado" not in clients
    home = carlos.get(f"/e/{beta.slug}/").get_data(as_text=True)
    assert re.findall(r'<option value="([^"]+)"', home) == [people["alfa"].slug, beta.slug]  # the selector
    assert carlos.get(f"/e/{beta.slug}/configuracoes/equipe").status_code == 404  # not an admin
    # at Alfa he is still a client (no staff page), and Beta's team lists him as active
    assert carlos.get(f"/e/{people['alfa'].slug}/").status_code == 200
    assert carlos.get(f"/e/{people['alfa'].slug}/configuracoes/usuarios-de-clientes").status_code == 404
    with users_db(config).begin() as s:
        member = s.scalar(select(models.StaffMember).where(models.StaffMember.firm_id == beta.id,
                                                           models.StaffMember.email == EMAILS["carlos"]))
        assert (member.status, member.identity_id, member.role) == ("active", people["ids"]["carlos"], "staff")
        assert queries.firm_for(s, identity_id=people["ids"]["carlos"], slug=people["alfa"].slug)[1] == "client"
    changed = [e["payload"] for e in bus.of_type("staff_member.changed")
               if e["payload"]["staff_member_id"] == str(member.id)]
    assert [c["status"] for c in changed] == ["invited", "active"]
    assert changed[-1]["identity_id"] == str(people["ids"]["carlos"])
    with database("auth", config).begin() as s:  # auth projects the staff membership (MFA policy)
        assert s.get(auth_models.StaffMembership, (people["ids"]["carlos"], beta.id)) is not None


def _require_staff_mfa(config, bus, firm, who):
    with users_db(config).begin() as s:
        services.set_staff_mfa_policy(s, firm=s.get(models.Firm, firm.id), require=True,
                                      actor=services.Actor(None, who, f"{who}@example.com"))
    bus.pump()


def _enrol(client, response):
    """The forced enrolment page, then its first code: the session opens only now."""
    assert response.status_code == 303 and response.headers["Location"] == "/auth/verificacao-obrigatoria"
    assert not sets_session(response)
    page = client.get("/auth/verificacao-obrigatoria").get_data(as_text=True)
    assert "Verificação em duas etapas obrigatória" in page
    secret = re.search(r'<code id="mfa-secret">([A-Z2-7]+)</code>', page).group(1)
    done = client.post("/auth/verificacao-obrigatoria", data={"csrf_token": csrf_token(page),
                                                              "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200 and sets_session(done)
    return done


def test_an_invited_newcomer_at_a_firm_requiring_mfa_enrols_before_any_session(config, bus, people):
    alfa = people["alfa"]
    invite(config, alfa, by="ana", name="Gisele Nova", email="gisele@alfa.example", role="admin")
    _require_staff_mfa(config, bus, alfa, "ana")  # (Ana has no second factor yet: she invites first)
    gisele = browser(config)
    opened = gisele.get(registre_agora(config, "gisele@alfa.example"))
    page = gisele.get(opened.headers["Location"]).get_data(as_text=True)
    assert "Registre-se na equipe de Contabilidade Alfa" in page
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    registered = gisele.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(page), "ticket": ticket, "name": "Gisele Nova", "password": NEW_PASSWORD,
        "password_confirmation": NEW_PASSWORD})
    # the login exists and the invitation is verified, but no session before the second factor
    assert gisele.get(f"/e/{alfa.slug}/").status_code == 303  # to the login page
    done = _enrol(gisele, registered)
    assert "/vinculando/" in done.get_data(as_text=True)
    bus.pump()
    assert gisele.get(f"/e/{alfa.slug}/configuracoes/equipe").status_code == 200  # an Administrador now
    # the next login asks for the code: the policy applies to her like to any staff
    other = browser(config)
    token = csrf_token(other.get("/auth/entrar").get_data(as_text=True))
    login = other.post("/auth/entrar", data={"csrf_token": token, "email": "gisele@alfa.example",
                                             "password": NEW_PASSWORD})
    assert login.headers["Location"] == "/auth/verificacao" and not sets_session(login)


def test_linking_a_login_into_a_team_requiring_mfa_enrols_before_any_session(config, bus, people):
    beta = people["beta"]
    invite(config, beta, by="bruno", name="Carlos Silva", email=EMAILS["carlos"], company_ids=[people["oficina"]])
    _require_staff_mfa(config, bus, beta, "bruno")
    carlos = browser(config)
    opened = carlos.get(registre_agora(config, EMAILS["carlos"]))
    page = carlos.get(opened.headers["Location"]).get_data(as_text=True)
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    linked = carlos.post("/auth/convite/vincular", data={"csrf_token": csrf_token(page), "ticket": ticket,
                                                        "password": PASSWORDS["carlos"]})
    _enrol(carlos, linked)
    bus.pump()
    assert "Eduardo Teixeira" in carlos.get(f"/e/{beta.slug}/configuracoes/usuarios-de-clientes").get_data(
        as_text=True)


def test_a_client_invitation_at_a_firm_requiring_staff_mfa_asks_nothing(config, bus, people):
    """Control: the policy is for staff; a client's invitation at the same firm opens the session."""
    alfa = people["alfa"]
    _require_staff_mfa(config, bus, alfa, "ana")
    with users_db(config).begin() as s:
        services.register_client_user(s, firm=s.get(models.Firm, alfa.id), name="Helena Cliente",
                                      email="helena@example.com", access="now")
    bus.pump()
    helena = browser(config)
    page = helena.get(helena.get(registre_agora(config, "helena@example.com")).headers["Location"]).get_data(
        as_text=True)
    assert "Registre-se no Portal do Cliente de Contabilidade Alfa" in page
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    registered = helena.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(page), "ticket": ticket, "name": "Helena Cliente", "password": NEW_PASSWORD,
        "password_confirmation": NEW_PASSWORD})
    assert registered.status_code == 303 and registered.headers["Location"].startswith("/vinculando/")
    assert sets_session(registered)

"""The invitation ticket pages: register (new e-mail) or link (e-mail already has an identity)."""
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import select

from services.auth import services
from services.auth.models import Identity
from testsupport import csrf_token

from .conftest import ANA, BETA, CARLOS, location_path, session_claims

INVALID = "Este link de convite é inválido ou expirou. Peça um novo convite ao seu escritório."


def _page(client, ticket):
    return client.get("/auth/convite?ticket=" + quote(ticket))


def _identities(auth_db):
    with auth_db.begin() as s:
        return s.scalars(select(Identity)).all()


def _login(client, person):
    token = csrf_token(client.get("/auth/entrar").get_data(as_text=True))
    assert client.post("/auth/entrar", data={"csrf_token": token, "email": person["email"],
                                             "password": person["password"]}).status_code == 303


# ---------------------------------------------------------------- registration (new e-mail)

def test_new_email_gets_the_registration_page(browser_client, make_ticket):
    ticket, claims = make_ticket(firm=BETA)
    response = _page(browser_client, ticket)
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Beta Contadores" in html.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert 'name="name" type="text" value="Carlos Souza"' in html
    assert 'value="carlos@exemplo.com.br"' in html and "readonly" in html
    for label in ("Nome", "E-mail", "Senha", "Confirme a senha", "Registrar",
                  "Use pelo menos 8 caracteres; senhas muito comuns não são aceitas."):
        assert label in html
    assert f'name="ticket" value="{ticket}"' in html


def test_registration_creates_the_identity_links_and_signs_in(browser_client, make_ticket, auth_db,
                                                             outbox_events, keyring):
    ticket, claims = make_ticket(firm=BETA)
    html = _page(browser_client, ticket).get_data(as_text=True)
    response = browser_client.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "name": "Carlos A. Souza",
        "password": CARLOS["password"], "password_confirmation": CARLOS["password"]})
    assert response.status_code == 303
    assert location_path(response) == f"/vinculando/{claims['inv']}"
    [carlos] = _identities(auth_db)
    assert (carlos.email, carlos.name) == (CARLOS["email"], "Carlos A. Souza")
    assert [e["type"] for e in outbox_events()] == ["identity.registered", "link.verified"]
    assert outbox_events("link.verified")[0]["payload"] == {
        "invitation_id": claims["inv"], "identity_id": str(carlos.id), "email": CARLOS["email"]}
    assert session_claims(browser_client, keyring)["sub"] == str(carlos.id)


def test_registration_errors_keep_the_name_and_create_nothing(browser_client, make_ticket, auth_db,
                                                             outbox_events):
    ticket, _claims = make_ticket()
    html = _page(browser_client, ticket).get_data(as_text=True)
    response = browser_client.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "name": "Carlos Alberto",
        "password": "password", "password_confirmation": "passw0rd"})
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "Esta senha é muito comum. Escolha outra." in html
    assert "As senhas não conferem." in html
    assert 'value="Carlos Alberto"' in html
    assert 'value="password"' not in html and 'value="passw0rd"' not in html
    assert _identities(auth_db) == [] and outbox_events() == []


def test_registration_with_an_empty_name_says_so(browser_client, make_ticket, auth_db):
    ticket, _claims = make_ticket()
    html = _page(browser_client, ticket).get_data(as_text=True)
    response = browser_client.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "name": "  ",
        "password": CARLOS["password"], "password_confirmation": CARLOS["password"]})
    assert response.status_code == 422
    assert "Preencha este campo." in response.get_data(as_text=True)
    assert _identities(auth_db) == []


def test_registering_an_email_that_already_has_an_identity_shows_the_link_page(
        browser_client, make_ticket, make_identity, auth_db, outbox_events):
    ticket, _claims = make_ticket()
    html = _page(browser_client, ticket).get_data(as_text=True)  # registration page, then...
    make_identity(CARLOS)  # ...the e-mail registers meanwhile (e.g. another tab)
    events_before = len(outbox_events())
    response = browser_client.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "name": "Carlos",
        "password": "outra-senha-segura-1", "password_confirmation": "outra-senha-segura-1"})
    html = response.get_data(as_text=True)
    assert "Você já tem acesso ao Portal do Cliente com o e-mail carlos@exemplo.com.br." in html
    assert "Vincular Contas" in html
    assert len(_identities(auth_db)) == 1 and len(outbox_events()) == events_before


# ---------------------------------------------------------------- link (e-mail already known)

def test_known_email_gets_the_link_page(browser_client, make_ticket, make_identity):
    make_identity(CARLOS)
    ticket, _claims = make_ticket(firm=BETA)
    response = _page(browser_client, ticket)
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Você já tem acesso ao Portal do Cliente com o e-mail carlos@exemplo.com.br." in html
    assert "Beta Contadores" in html
    assert "Senha" in html and "Vincular Contas" in html and "Confirme a senha" not in html
    assert f'name="ticket" value="{ticket}"' in html
    forgot = html.split('">Esqueci a senha')[0].rsplit('href="', 1)[1]
    parts = urlsplit(forgot)
    assert parts.path == "/auth/esqueci-senha"
    query = parse_qs(parts.query)
    assert query["email"] == [CARLOS["email"]]
    assert query["next"] == ["/auth/convite?ticket=" + ticket]


def test_right_password_links_and_signs_in_with_a_new_session(browser_client, make_ticket, make_identity,
                                                              outbox_events, keyring):
    carlos = make_identity(CARLOS)
    _login(browser_client, CARLOS)
    old_sid = session_claims(browser_client, keyring)["sid"]
    ticket, claims = make_ticket(firm=BETA)
    html = _page(browser_client, ticket).get_data(as_text=True)
    assert "Você está conectado como" not in html  # same person: no notice
    response = browser_client.post("/auth/convite/vincular", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "password": CARLOS["password"]})
    assert response.status_code == 303
    assert location_path(response) == f"/vinculando/{claims['inv']}"
    [event] = outbox_events("link.verified")
    assert event["payload"] == {"invitation_id": claims["inv"], "identity_id": str(carlos.id),
                                "email": CARLOS["email"]}
    session = session_claims(browser_client, keyring)
    assert session["sub"] == str(carlos.id) and session["sid"] != old_sid


def test_wrong_password_links_nothing(browser_client, make_ticket, make_identity, outbox_events, keyring):
    make_identity(CARLOS)
    ticket, _claims = make_ticket(firm=BETA)
    html = _page(browser_client, ticket).get_data(as_text=True)
    response = browser_client.post("/auth/convite/vincular", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "password": "girassol-azul-43"})
    html = response.get_data(as_text=True)
    assert response.status_code in (200, 422)
    assert "Senha incorreta. Nenhuma conta foi vinculada." in html
    assert "Vincular Contas" in html and f'name="ticket" value="{ticket}"' in html
    assert "girassol-azul-43" not in html
    assert outbox_events("link.verified") == []
    assert session_claims(browser_client, keyring) is None


def test_password_of_another_identity_links_nothing(browser_client, make_ticket, make_identity, outbox_events):
    make_identity(CARLOS)
    make_identity(ANA)
    ticket, _claims = make_ticket(firm=BETA)  # addressed to Carlos
    html = _page(browser_client, ticket).get_data(as_text=True)
    response = browser_client.post("/auth/convite/vincular", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "password": ANA["password"]})
    assert "Senha incorreta. Nenhuma conta foi vinculada." in response.get_data(as_text=True)
    assert outbox_events("link.verified") == []


def test_link_without_csrf_token_is_refused(browser_client, make_ticket, make_identity, outbox_events):
    make_identity(CARLOS)
    ticket, _claims = make_ticket()
    _page(browser_client, ticket)
    response = browser_client.post("/auth/convite/vincular", data={"ticket": ticket, "password": CARLOS["password"]})
    assert response.status_code == 400
    assert outbox_events("link.verified") == []


def test_someone_else_signed_in_sees_who_and_can_sign_out_and_continue(browser_client, make_ticket,
                                                                      make_identity, keyring):
    make_identity(CARLOS)
    make_identity(ANA)
    _login(browser_client, ANA)
    ticket, _claims = make_ticket(firm=BETA)
    html = unescape(_page(browser_client, ticket).get_data(as_text=True))
    assert "Você está conectado como Ana Lima (ana@alfa.com.br)." in html
    assert "Sair e continuar" in html
    notice = html.split("Você está conectado como", 1)[1].split("</form>", 1)[0]
    assert 'action="/auth/sair"' in notice
    assert f'name="next" value="/auth/convite?ticket={ticket}"' in notice
    response = browser_client.post("/auth/sair", data={"csrf_token": csrf_token(html),
                                                      "next": f"/auth/convite?ticket={ticket}"},
                                   follow_redirects=True)  # through the front-channel logout
    assert location_path(response.history[-1]) == f"/auth/convite?ticket={ticket}"
    assert session_claims(browser_client, keyring) is None
    html = _page(browser_client, ticket).get_data(as_text=True)
    assert "Você está conectado como" not in html


# ---------------------------------------------------------------- bad tickets

def test_forged_expired_or_foreign_tickets_get_404(browser_client, make_ticket, keyring):
    good, claims = make_ticket()
    header, body, _sig = good.split(".")
    forged_sig = keyring.sign("invitations", {**claims, "email": "intruso@exemplo.com"},
                              audience="balcao-invitation", ttl=timedelta(hours=1)).split(".")[2]
    bad = [
        make_ticket(ttl=timedelta(seconds=-5))[0],            # expired
        make_ticket(issuer="users")[0],                       # signed by another service
        make_ticket(audience="balcao-session")[0],            # a token for something else
        f"{header}.{body}.{forged_sig}",                      # signature of other claims
        "nao-e-um-ticket",
        "",
    ]
    for ticket in bad:
        response = _page(browser_client, ticket)
        assert response.status_code == 404, ticket
        assert INVALID in unescape(response.get_data(as_text=True))
    assert _page(browser_client, good).status_code == 200


def test_ticket_missing_claims_gets_404(browser_client, keyring):
    ticket = keyring.sign("invitations", {"inv": "not-a-uuid", "email": "carlos@exemplo.com.br"},
                          audience="balcao-invitation", ttl=timedelta(hours=1))
    assert _page(browser_client, ticket).status_code == 404


def test_posting_with_a_forged_ticket_links_and_registers_nothing(browser_client, make_ticket, make_identity,
                                                                  auth_db, outbox_events):
    make_identity(CARLOS)
    good, _claims = make_ticket()
    html = _page(browser_client, good).get_data(as_text=True)
    token = csrf_token(html)
    expired, _ = make_ticket(ttl=timedelta(seconds=-5))
    r1 = browser_client.post("/auth/convite/vincular", data={"csrf_token": token, "ticket": expired,
                                                            "password": CARLOS["password"]})
    stranger, _ = make_ticket(email="novo@exemplo.com.br", issuer="users")
    r2 = browser_client.post("/auth/convite/registrar", data={
        "csrf_token": token, "ticket": stranger, "name": "Novo",
        "password": "outra-senha-segura-1", "password_confirmation": "outra-senha-segura-1"})
    assert r1.status_code == 404 and r2.status_code == 404
    assert outbox_events("link.verified") == []
    assert len(_identities(auth_db)) == 1


def test_register_without_csrf_token_is_refused(browser_client, make_ticket, auth_db, outbox_events):
    ticket, _claims = make_ticket()
    _page(browser_client, ticket)
    response = browser_client.post("/auth/convite/registrar", data={
        "ticket": ticket, "name": "Carlos", "password": CARLOS["password"],
        "password_confirmation": CARLOS["password"]})
    assert response.status_code == 400
    assert _identities(auth_db) == [] and outbox_events() == []


# ---------------------------------------------------------------- the service functions alone

def test_register_from_invitation_refuses_a_known_email(auth_db, make_identity, make_ticket, outbox_events):
    make_identity(CARLOS)
    _t, claims = make_ticket()
    with pytest.raises(services.EmailAlreadyRegistered):
        with auth_db.begin() as s:
            services.register_from_invitation(s, ticket=claims, name="Carlos", password="outra-senha-segura-1",
                                              password_confirmation="outra-senha-segura-1")
    assert outbox_events("link.verified") == []

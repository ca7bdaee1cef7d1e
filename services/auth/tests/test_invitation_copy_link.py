"""The invitation's copy link (what staff see under "Copiar link do convite") did not come through
the person's inbox. Whoever holds it can neither learn whether the e-mail has an account elsewhere
nor set the password of a new login without the one-time code e-mailed to the invitee: every
invitation page answers the same "Confirme seu e-mail" step until the code is right, then the
usual registration / "já tem acesso" flow goes on. The e-mailed link keeps the help article's flow
(test_invitation.py).
"""
import re
from html import unescape
from urllib.parse import quote

import pytest
from sqlalchemy import select

from services.auth import invites
from services.auth.models import Identity, InvitationCode
from testsupport import count_queries, csrf_token

from .conftest import ANA, CARLOS, location_path, new_browser, session_claims

CONFIRM = "Confirme seu e-mail"
KNOWS_ACCOUNT = ("já tem acesso", "Vincular Contas", "Registrar", "Confirme a senha", "Esqueci a senha")
WRONG_CODE = "Código inválido ou expirado. Confira o código mais recente que enviamos ou peça outro."


def _page(client, ticket):
    return client.get("/auth/convite?ticket=" + quote(ticket))


def _token(client) -> str:
    return csrf_token(client.get("/auth/entrar").get_data(as_text=True))


def _identities(auth_db):
    with auth_db.begin() as s:
        return s.scalars(select(Identity)).all()


def _send_code(client, ticket):
    return client.post("/auth/convite/codigo", data={"csrf_token": _token(client), "ticket": ticket})


def _check_code(client, ticket, code):
    return client.post("/auth/convite/codigo/confirmar", data={"csrf_token": _token(client), "ticket": ticket,
                                                              "code": code})


def _code_mails(outbox_events):
    return [e for e in outbox_events("notification.email_requested") if e["payload"]["template"] == "invitation_code"]


def _last_code(outbox_events, keyring) -> str:
    return keyring.unseal(_code_mails(outbox_events)[-1]["payload"]["sealed"])["code"]


def _neutral(html: str, ticket: str) -> str:
    """The page without what differs by construction (the CSRF token, the ticket and its e-mail)."""
    html = re.sub(r'name="csrf_token" value="[^"]+"', "", unescape(html))
    return html.replace(ticket, "TICKET").replace(quote(ticket, safe=""), "TICKET")


def _proved(client, ticket, outbox_events, keyring):
    assert _send_code(client, ticket).status_code == 303
    response = _check_code(client, ticket, _last_code(outbox_events, keyring))
    assert location_path(response) == "/auth/convite?ticket=" + quote(ticket, safe="")
    return response


# ---------------------------------------------------------------- learning nothing without the code

def test_the_copy_link_asks_to_confirm_the_email_whether_or_not_it_has_an_account(browser_client, make_ticket,
                                                                                   make_identity):
    make_identity(ANA)
    known, _k = make_ticket(email=ANA["email"], name="Fulano", via="copy")
    unknown, _u = make_ticket(email="ninguem@exemplo.com.br", name="Fulano", via="copy")
    pages = [_page(browser_client, known), _page(browser_client, unknown)]
    for page in pages:
        html = unescape(page.get_data(as_text=True))
        assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
        assert CONFIRM in html and "Enviar código" in html
        assert not any(word in html for word in KNOWS_ACCOUNT), html
    known_html = _neutral(pages[0].get_data(as_text=True), known).replace(ANA["email"], "EMAIL")
    unknown_html = _neutral(pages[1].get_data(as_text=True), unknown).replace("ninguem@exemplo.com.br", "EMAIL")
    assert known_html == unknown_html


@pytest.mark.parametrize("known", [True, False])
def test_registering_or_linking_with_a_copy_link_needs_the_code(browser_client, make_ticket, make_identity, auth_db,
                                                                outbox_events, keyring, known):
    if known:
        make_identity(CARLOS)
    ticket, _claims = make_ticket(via="copy")
    answers = [
        browser_client.post("/auth/convite/registrar", data={
            "csrf_token": _token(browser_client), "ticket": ticket, "name": "Staff de Beta",
            "password": "senha-da-equipe-beta-1", "password_confirmation": "senha-da-equipe-beta-1"}),
        browser_client.post("/auth/convite/vincular", data={
            "csrf_token": _token(browser_client), "ticket": ticket, "password": CARLOS["password"]}),
    ]
    for answer in answers:
        html = unescape(answer.get_data(as_text=True))
        assert answer.status_code == 403 and CONFIRM in html
        assert not any(word in html for word in KNOWS_ACCOUNT)
    assert len(_identities(auth_db)) == (1 if known else 0)
    assert outbox_events("link.verified") == []
    assert len(outbox_events("identity.registered")) == (1 if known else 0)
    assert session_claims(browser_client, keyring) is None


def test_the_answers_without_the_code_are_the_same_for_known_and_unknown_emails(config, make_ticket,
                                                                                make_identity):
    make_identity(ANA)
    results = {}
    for email in (ANA["email"], "ninguem@exemplo.com.br"):
        client, _apps = new_browser(config)
        ticket, _claims = make_ticket(email=email, name="Fulano", via="copy")
        bodies = []
        for path, data in (("/auth/convite/registrar", {"name": "X", "password": "senha-qualquer-123",
                                                        "password_confirmation": "senha-qualquer-123"}),
                           ("/auth/convite/vincular", {"password": "senha-qualquer-123"})):
            answer = client.post(path, data={"csrf_token": _token(client), "ticket": ticket, **data})
            bodies.append((answer.status_code, _neutral(answer.get_data(as_text=True), ticket).replace(email, "E")))
        results[email] = bodies
    assert results[ANA["email"]] == results["ninguem@exemplo.com.br"]


def test_sending_the_code_does_the_same_work_for_known_and_unknown_emails(config, make_ticket, make_identity,
                                                                          outbox_events):
    """Not even the account is looked up: the same statements, the same e-mail request."""
    make_identity(ANA)
    statements = {}
    for email in (ANA["email"], "ninguem@exemplo.com.br"):
        client, _apps = new_browser(config)
        ticket, _claims = make_ticket(email=email, name="Fulano", via="copy")
        token = _token(client)
        with count_queries(config, "auth") as counter:
            response = client.post("/auth/convite/codigo", data={"csrf_token": token, "ticket": ticket})
        assert response.status_code == 303
        # (the throttle sweeps expired counters at the first hit of a new window: that depends on
        # the window, not on the e-mail)
        statements[email] = [st for st in counter.statements if not st.startswith("DELETE FROM auth_counters")]
    assert statements[ANA["email"]] == statements["ninguem@exemplo.com.br"]
    assert not any("identities" in statement for statement in statements[ANA["email"]])
    known, unknown = (mail["payload"] for mail in _code_mails(outbox_events))
    assert known.keys() == unknown.keys() and known["context"].keys() == unknown["context"].keys()
    assert (known["recipient"], unknown["recipient"]) == (ANA["email"], "ninguem@exemplo.com.br")


# ---------------------------------------------------------------- the code

def test_the_code_is_emailed_sealed_and_stored_only_hashed(browser_client, make_ticket, auth_db, outbox_events,
                                                           keyring):
    ticket, claims = make_ticket(via="copy")
    response = _send_code(browser_client, ticket)
    assert location_path(response) == "/auth/convite?ticket=" + quote(ticket, safe="")
    [mail] = _code_mails(outbox_events)
    payload = mail["payload"]
    assert payload["recipient"] == CARLOS["email"] and payload["locale"] == "pt_BR"
    assert payload["context"] == {"firm_name": "Beta Contadores", "name": CARLOS["name"]}
    code = keyring.unseal(payload["sealed"])["code"]
    assert re.fullmatch(r"\d{6}", code)
    assert code not in str(payload["context"]) and code not in payload["idempotency_key"] + payload["reference"]
    with auth_db.begin() as s:
        [row] = s.scalars(select(InvitationCode)).all()
        assert str(row.invitation_id) == claims["inv"] and row.email == CARLOS["email"]
        assert row.code_hash.startswith("$argon2id$") and code not in row.code_hash
    html = unescape(_page(browser_client, ticket).get_data(as_text=True))
    assert f"Enviamos um código de 6 dígitos para {CARLOS['email']}. Ele vale por 10 minutos." in html
    assert 'name="code"' in html and "Enviar outro código" in html


@pytest.mark.parametrize("known", [True, False])
def test_the_right_code_continues_with_the_usual_flow(browser_client, make_ticket, make_identity, auth_db,
                                                      outbox_events, keyring, known):
    if known:
        carlos = make_identity(CARLOS)
    ticket, claims = make_ticket(via="copy")
    _proved(browser_client, ticket, outbox_events, keyring)
    html = unescape(_page(browser_client, ticket).get_data(as_text=True))
    if known:
        assert "Você já tem acesso ao Portal do Cliente com o e-mail carlos@exemplo.com.br." in html
        response = browser_client.post("/auth/convite/vincular", data={
            "csrf_token": csrf_token(html), "ticket": ticket, "password": CARLOS["password"]})
    else:
        assert 'name="password_confirmation"' in html and "Registrar" in html
        response = browser_client.post("/auth/convite/registrar", data={
            "csrf_token": csrf_token(html), "ticket": ticket, "name": CARLOS["name"],
            "password": CARLOS["password"], "password_confirmation": CARLOS["password"]})
        [carlos] = _identities(auth_db)
    assert location_path(response) == f"/vinculando/{claims['inv']}"
    [verified] = outbox_events("link.verified")
    assert verified["payload"]["identity_id"] == str(carlos.id)
    assert session_claims(browser_client, keyring)["sub"] == str(carlos.id)


def test_a_wrong_code_proves_nothing_and_few_tries_end_the_code(browser_client, make_ticket, outbox_events,
                                                                keyring, auth_db):
    ticket, _claims = make_ticket(via="copy")
    _send_code(browser_client, ticket)
    code = _last_code(outbox_events, keyring)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _attempt in range(invites.CODE_ATTEMPTS):
        response = _check_code(browser_client, ticket, wrong)
        assert response.status_code == 422 and WRONG_CODE in unescape(response.get_data(as_text=True))
        assert CONFIRM in _page(browser_client, ticket).get_data(as_text=True)
    # the right code, after that many wrong ones, no longer works
    response = _check_code(browser_client, ticket, code)
    assert response.status_code == 422 and WRONG_CODE in unescape(response.get_data(as_text=True))
    assert _identities(auth_db) == []
    # a new code does
    _proved(browser_client, ticket, outbox_events, keyring)


def test_the_code_is_single_use_short_lived_and_bound_to_its_invitation(config, make_ticket, outbox_events, keyring,
                                                                        clock):
    first, _c1 = make_ticket(via="copy")
    other, _c2 = make_ticket(via="copy")  # another invitation to the same e-mail
    client, _apps = new_browser(config)
    _send_code(client, first)
    code = _last_code(outbox_events, keyring)
    assert _check_code(client, other, code).status_code == 422  # not this invitation's code
    assert location_path(_check_code(client, first, code)) == "/auth/convite?ticket=" + quote(first, safe="")
    assert CONFIRM in _page(client, other).get_data(as_text=True)  # the proof is for the first one only
    elsewhere, _apps = new_browser(config)
    assert _check_code(elsewhere, first, code).status_code == 422  # used
    # expired after 10 minutes
    _send_code(elsewhere, first)
    late = _last_code(outbox_events, keyring)
    clock.advance(minutes=10, seconds=1)
    assert _check_code(elsewhere, first, late).status_code == 422


def test_a_new_code_replaces_the_previous_one(browser_client, make_ticket, outbox_events, keyring, monkeypatch):
    drawn = iter([111111, 222222])
    monkeypatch.setattr(invites.secrets, "randbelow", lambda _n: next(drawn))  # two different codes, surely
    ticket, _claims = make_ticket(via="copy")
    _send_code(browser_client, ticket)
    old = _last_code(outbox_events, keyring)
    _send_code(browser_client, ticket)
    new = _last_code(outbox_events, keyring)
    assert (old, new) == ("111111", "222222")
    assert _check_code(browser_client, ticket, old).status_code == 422
    assert _check_code(browser_client, ticket, new).status_code == 303


def test_a_ticket_that_does_not_say_which_link_counts_as_a_copy(browser_client, make_ticket, make_identity):
    make_identity(CARLOS)
    ticket, _claims = make_ticket(via=None)
    html = _page(browser_client, ticket).get_data(as_text=True)
    assert CONFIRM in html and "já tem acesso" not in html


def test_the_emailed_link_needs_no_code(browser_client, make_ticket, outbox_events):
    ticket, _claims = make_ticket(via="email")
    assert "Registrar" in _page(browser_client, ticket).get_data(as_text=True)
    response = _send_code(browser_client, ticket)  # nothing to prove: back to the page, nothing sent
    assert location_path(response) == "/auth/convite?ticket=" + quote(ticket, safe="")
    assert _code_mails(outbox_events) == []


@pytest.mark.parametrize("state", ["voided", "accepted", "expired"])
def test_no_code_for_a_dead_invitation(browser_client, make_ticket, outbox_events, state):
    ticket, _claims = make_ticket(via="copy", state=state)
    assert _send_code(browser_client, ticket).status_code == 404
    assert _check_code(browser_client, ticket, "123456").status_code == 404
    assert _code_mails(outbox_events) == []


def test_the_code_routes_need_a_csrf_token_and_a_valid_ticket(browser_client, make_ticket, outbox_events):
    ticket, _claims = make_ticket(via="copy")
    _page(browser_client, ticket)
    assert browser_client.post("/auth/convite/codigo", data={"ticket": ticket}).status_code == 400
    forged, _ = make_ticket(via="copy", issuer="users")
    assert _send_code(browser_client, forged).status_code == 404
    assert _check_code(browser_client, "nao-e-um-ticket", "123456").status_code == 404
    assert _code_mails(outbox_events) == []


# ---------------------------------------------------------------- rate limits

def test_sending_codes_is_rate_limited_per_ip_and_per_invitation(config, make_ticket, outbox_events, clock):
    from services.auth.invite_steps import CODES_PER_INVITATION, SEND_LIMIT
    client, _apps = new_browser(config, ip="203.0.113.7")
    for _i in range(SEND_LIMIT[0]):
        ticket, _claims = make_ticket(via="copy")
        assert _send_code(client, ticket).status_code == 303
    assert _send_code(client, ticket).status_code == 429  # this IP, this minute
    sent = len(_code_mails(outbox_events))
    # one invitation from many IPs: at most CODES_PER_INVITATION e-mails an hour to the invitee
    ticket, _claims = make_ticket(via="copy")
    for i in range(CODES_PER_INVITATION[0]):
        other, _apps = new_browser(config, ip=f"198.51.100.{i + 1}")
        assert _send_code(other, ticket).status_code == 303
    other, _apps = new_browser(config, ip="198.51.100.200")
    response = _send_code(other, ticket)
    assert response.status_code == 429
    assert "Já enviamos vários códigos para este e-mail." in unescape(response.get_data(as_text=True))
    assert len(_code_mails(outbox_events)) == sent + CODES_PER_INVITATION[0]


def test_checking_codes_is_rate_limited_per_ip(config, make_ticket, clock):
    from services.auth.invite_steps import CHECK_LIMIT
    client, _apps = new_browser(config, ip="203.0.113.8")
    ticket, _claims = make_ticket(via="copy")
    for _i in range(CHECK_LIMIT[0]):
        assert _check_code(client, ticket, "000000").status_code == 422
    assert _check_code(client, ticket, "000000").status_code == 429


def test_the_new_pages_in_english(browser_client, make_ticket, outbox_events, keyring):
    browser_client.set_cookie("balcao_locale", "en")
    ticket, _claims = make_ticket(via="copy")
    html = unescape(_page(browser_client, ticket).get_data(as_text=True))
    assert "Confirm your e-mail" in html and "Send code" in html
    _send_code(browser_client, ticket)
    html = unescape(_page(browser_client, ticket).get_data(as_text=True))
    assert f"We sent a 6-digit code to {CARLOS['email']}. It is valid for 10 minutes." in html
    wrong = _check_code(browser_client, ticket, "x")
    assert "Invalid or expired code." in unescape(wrong.get_data(as_text=True))
    unknown, _claims = make_ticket(state=None)
    html = unescape(_page(browser_client, unknown).get_data(as_text=True))
    assert "Your invitation is almost ready" in html and "Try again" in html

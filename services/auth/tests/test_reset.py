"""Forgot password and reset: same answer for every e-mail, sealed single-use expiring link."""
import hashlib
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import quote, urlsplit

from sqlalchemy import select, update

from services.auth import services
from services.auth.models import PasswordResetToken
from testsupport import count_queries, csrf_token

from .conftest import ANA, CARLOS, location_path

SENT = ("Se houver uma conta com este e-mail, enviamos um link para redefinir a senha. "
        "Verifique também a pasta de spam ou lixo eletrônico.")
NEW_PASSWORD = "jabuticaba-madura-88"


def _forgot(client, email, *, next_=None):
    page = client.get("/auth/esqueci-senha" + (f"?next={quote(next_)}" if next_ else ""))
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email}
    return client.post("/auth/esqueci-senha", data=data)


def _reset_link(keyring, outbox_events, index=-1):
    event = outbox_events("notification.email_requested")[index]
    return keyring.unseal(event["payload"]["sealed"])["link"]


def _can_login(client, email, password):
    token = csrf_token(client.get("/auth/entrar").get_data(as_text=True))
    return client.post("/auth/entrar", data={"csrf_token": token, "email": email,
                                             "password": password}).status_code == 303


def _post_reset(client, path, password, confirmation=None):
    html = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(html), "password": password,
                                   "password_confirmation": password if confirmation is None else confirmation})


def test_forgot_page_prefills_the_email(browser_client):
    html = browser_client.get("/auth/esqueci-senha?email=carlos@exemplo.com.br").get_data(as_text=True)
    assert 'value="carlos@exemplo.com.br"' in html and "E-mail" in html and "Enviar" in html


def test_same_answer_for_known_and_unknown_email_only_known_gets_mail(browser_client, make_identity,
                                                                      outbox_events):
    carlos = make_identity(CARLOS)
    known = _forgot(browser_client, " Carlos@Exemplo.com.br ")
    unknown = _forgot(browser_client, "ninguem@exemplo.com.br")
    assert known.status_code == unknown.status_code == 200
    for response in (known, unknown):
        assert SENT in unescape(response.get_data(as_text=True))
    [event] = outbox_events("notification.email_requested")
    payload = event["payload"]
    assert payload["template"] == "password_reset"
    assert payload["recipient"] == CARLOS["email"]
    assert payload["locale"] == "pt_BR"
    assert payload["context"] == {"name": CARLOS["name"]}
    assert payload["idempotency_key"].startswith("password_reset:")
    assert payload["reference"] == payload["idempotency_key"]
    assert str(carlos.id) not in payload["sealed"]


def test_known_and_unknown_emails_run_the_same_statements(browser_client, config, make_identity, clock):
    """The request itself must not tell which e-mails have accounts, by time either: both run the very
    same SQL (parameters aside); the lookup, the token and the e-mail happen in auth's consumer."""
    make_identity(CARLOS)
    _forgot(browser_client, "aquecimento@exemplo.com.br")  # opens this minute's rate-limit window
    statements = {}
    for email in (CARLOS["email"], "ninguem@exemplo.com.br"):
        html = browser_client.get("/auth/esqueci-senha").get_data(as_text=True)
        with count_queries(config, "auth") as queries:
            response = browser_client.post("/auth/esqueci-senha", data={"csrf_token": csrf_token(html),
                                                                        "email": email})
        assert response.status_code == 200 and SENT in unescape(response.get_data(as_text=True))
        statements[email] = queries.statements
    assert statements[CARLOS["email"]] == statements["ninguem@exemplo.com.br"]
    assert not any("identities" in s or "password_reset_tokens" in s for s in statements[CARLOS["email"]])


def test_the_request_is_an_event_and_only_a_known_email_gets_a_token(browser_client, make_identity, auth_db,
                                                                     config, outbox_events):
    from .conftest import recorded_events, run_own_consumers
    make_identity(CARLOS)
    for email in (" Carlos@Exemplo.com.br ", "ninguem@exemplo.com.br"):
        _forgot(browser_client, email)
    assert [(e["type"], e["payload"]) for e in recorded_events(auth_db) if e["type"] != "identity.registered"] == [
        ("password_reset.requested", {"email": CARLOS["email"]}),
        ("password_reset.requested", {"email": "ninguem@exemplo.com.br"})]
    run_own_consumers(config)
    run_own_consumers(config)  # a redelivery changes nothing
    with auth_db.begin() as s:
        assert len(s.scalars(select(PasswordResetToken)).all()) == 1
    assert [e["payload"]["recipient"] for e in outbox_events("notification.email_requested")] == [CARLOS["email"]]


def test_invalid_email_gets_a_message_and_is_kept(browser_client, outbox_events):
    response = _forgot(browser_client, "carlos-sem-arroba")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Informe um e-mail válido." in html and 'value="carlos-sem-arroba"' in html
    assert outbox_events() == []


def test_the_sealed_link_resets_the_password_once(browser_client, make_identity, outbox_events, keyring,
                                                  config):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"])
    link = _reset_link(keyring, outbox_events)
    assert link.startswith(f"{config.public_url}/auth/redefinir-senha/")
    path = urlsplit(link).path
    page = browser_client.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = page.get_data(as_text=True)
    for label in ("Nova senha", "Confirme a nova senha", "Salvar nova senha"):
        assert label in html
    response = _post_reset(browser_client, path, NEW_PASSWORD)
    assert response.status_code == 303
    assert location_path(response) == "/auth/entrar"
    assert "Senha alterada. Agora use a nova senha." in browser_client.get("/auth/entrar").get_data(as_text=True)
    assert _can_login(browser_client, CARLOS["email"], NEW_PASSWORD)
    assert not _can_login(browser_client, CARLOS["email"], CARLOS["password"])
    # single use
    again = browser_client.get(path)
    assert again.status_code == 404
    assert "esqueci-senha" in again.get_data(as_text=True)
    fresh = csrf_token(browser_client.get("/auth/esqueci-senha").get_data(as_text=True))  # logged in since
    assert browser_client.post(path, data={"csrf_token": fresh, "password": "outra-coisa-boa-7",
                                           "password_confirmation": "outra-coisa-boa-7"}).status_code == 404
    assert _can_login(browser_client, CARLOS["email"], NEW_PASSWORD)


def test_policy_errors_keep_the_link_usable(browser_client, make_identity, outbox_events, keyring):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"])
    path = urlsplit(_reset_link(keyring, outbox_events)).path
    response = _post_reset(browser_client, path, "12345678")
    assert response.status_code == 422
    assert "Esta senha é muito comum. Escolha outra." in unescape(response.get_data(as_text=True))
    response = _post_reset(browser_client, path, NEW_PASSWORD, confirmation=NEW_PASSWORD + "x")
    assert "As senhas não conferem." in unescape(response.get_data(as_text=True))
    assert _post_reset(browser_client, path, NEW_PASSWORD).status_code == 303


def test_a_new_request_invalidates_the_older_link(browser_client, make_identity, outbox_events, keyring):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"])
    _forgot(browser_client, CARLOS["email"])
    first = urlsplit(_reset_link(keyring, outbox_events, 0)).path
    second = urlsplit(_reset_link(keyring, outbox_events, 1)).path
    assert first != second
    assert browser_client.get(first).status_code == 404
    assert browser_client.get(second).status_code == 200


def test_an_expired_link_gets_404(browser_client, make_identity, outbox_events, keyring, auth_db):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"])
    path = urlsplit(_reset_link(keyring, outbox_events)).path
    with auth_db.begin() as s:
        s.execute(update(PasswordResetToken).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert browser_client.get(path).status_code == 404
    assert browser_client.get("/auth/redefinir-senha/inventado").status_code == 404


def test_reset_tokens_are_stored_only_as_hashes(browser_client, make_identity, outbox_events, keyring, auth_db):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"])
    raw = urlsplit(_reset_link(keyring, outbox_events)).path.rsplit("/", 1)[1]
    with auth_db.begin() as s:
        [row] = s.scalars(select(PasswordResetToken)).all()
    assert len(raw) >= 43 and row.token_hash != raw
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()


def test_after_reset_the_person_goes_back_to_the_link_page(browser_client, make_identity, make_ticket,
                                                          outbox_events, keyring):
    make_identity(CARLOS)
    ticket, _claims = make_ticket()
    invite_path = "/auth/convite?ticket=" + ticket
    html = unescape(browser_client.get(invite_path).get_data(as_text=True))
    forgot_href = html.split('">Esqueci a senha')[0].rsplit('href="', 1)[1]
    page = browser_client.get(forgot_href)
    assert f'value="{CARLOS["email"]}"' in page.get_data(as_text=True)
    browser_client.post("/auth/esqueci-senha", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                     "email": CARLOS["email"]})
    path = urlsplit(_reset_link(keyring, outbox_events)).path
    response = _post_reset(browser_client, path, NEW_PASSWORD)
    assert location_path(response) == invite_path
    # ...and links with the new password
    html = browser_client.get(invite_path).get_data(as_text=True)
    assert "Senha alterada. Agora use a nova senha." in unescape(html)
    linked = browser_client.post("/auth/convite/vincular", data={"csrf_token": csrf_token(html),
                                                                "ticket": ticket, "password": NEW_PASSWORD})
    assert linked.status_code == 303
    assert len(outbox_events("link.verified")) == 1


def test_an_unsafe_next_is_not_followed_after_reset(browser_client, make_identity, outbox_events, keyring):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"], next_="//evil.example/")
    path = urlsplit(_reset_link(keyring, outbox_events)).path
    assert location_path(_post_reset(browser_client, path, NEW_PASSWORD)) == "/auth/entrar"


def test_forgot_without_csrf_token_is_refused(browser_client, make_identity, outbox_events):
    make_identity(CARLOS)
    browser_client.get("/auth/esqueci-senha")
    assert browser_client.post("/auth/esqueci-senha", data={"email": CARLOS["email"]}).status_code == 400
    assert outbox_events("notification.email_requested") == []


def test_request_password_reset_for_unknown_email_writes_nothing(auth_db, keyring, outbox_events, make_identity):
    make_identity(ANA)
    with auth_db.begin() as s:
        services.request_password_reset(s, email=CARLOS["email"], keyring=keyring, public_url="http://x")
    with auth_db.begin() as s:
        assert s.scalars(select(PasswordResetToken)).all() == []
    assert outbox_events("notification.email_requested") == []


def test_reset_without_csrf_token_is_refused(browser_client, make_identity, outbox_events, keyring):
    make_identity(CARLOS)
    _forgot(browser_client, CARLOS["email"])
    path = urlsplit(_reset_link(keyring, outbox_events)).path
    response = browser_client.post(path, data={"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    assert response.status_code == 400
    assert browser_client.get(path).status_code == 200  # the link still works
    assert _can_login(browser_client, CARLOS["email"], CARLOS["password"])

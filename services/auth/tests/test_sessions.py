"""Sessions: one auth_sessions row per login (its sid in the token), idle and absolute timeouts,
renewal, Minha conta › Sessões, password change and reset ending sessions."""
from urllib.parse import urlsplit

from sqlalchemy import select

from services.auth.models import AuthSession, Identity
from testsupport import count_queries

from .conftest import ANA, CARLOS, location_path, login, new_browser, post_form, session_claims

NEW_PASSWORD = "jabuticaba-doce-88"
CHROME_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def _sign_in(config, person=CARLOS, **kw):
    client, _apps = new_browser(config, **kw)
    assert login(client, email=person["email"], password=person["password"]).status_code == 303
    return client


def _renew(client, next_="/e/alfa/"):
    return client.get(f"/auth/sessao/renovar?next={next_}")


def test_each_login_opens_a_new_recorded_session(config, make_identity, auth_db, keyring, clock):
    make_identity()
    client = _sign_in(config, ip="10.1.1.1", user_agent=CHROME_WINDOWS)
    first = session_claims(client, keyring)["sid"]
    assert login(client, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    second = session_claims(client, keyring)["sid"]
    assert first != second
    with auth_db.begin() as s:
        rows = {r.sid: r for r in s.scalars(select(AuthSession))}
    assert set(rows) == {first, second}
    assert rows[second].ip == "10.1.1.1" and "Chrome" in rows[second].user_agent


def test_renewal_while_active_and_refusal_when_idle(config, make_identity, keyring, clock):
    make_identity()
    client = _sign_in(config)
    clock.advance(minutes=29)
    response = _renew(client)
    assert response.status_code == 303 and location_path(response) == "/e/alfa/"
    assert session_claims(client, keyring) is not None
    clock.advance(minutes=29)  # renewal above counted as activity
    assert location_path(_renew(client)) == "/e/alfa/"
    clock.advance(minutes=31)
    response = _renew(client)
    assert response.status_code == 303 and location_path(response) == "/auth/entrar?next=/e/alfa/"
    assert session_claims(client, keyring) is None  # cookie cleared
    assert location_path(_renew(client)).startswith("/auth/entrar")


def test_absolute_timeout_ends_even_an_active_session(config, make_identity, clock):
    make_identity()
    client = _sign_in(config)
    for _i in range(12 * 4 - 1):
        clock.advance(minutes=15)
        assert location_path(_renew(client)) == "/e/alfa/"
    clock.advance(minutes=15)  # 12 h after login
    assert location_path(_renew(client)).startswith("/auth/entrar")


def test_renewal_only_goes_to_a_safe_next(config, make_identity):
    make_identity()
    client = _sign_in(config)
    assert location_path(_renew(client, "//evil.example/")) == "/"


def test_sessions_page_lists_and_ends_sessions(config, make_identity, clock):
    make_identity()
    phone = _sign_in(config, ip="10.2.2.2",
                     user_agent="Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36")
    desk = _sign_in(config, ip="10.3.3.3", user_agent=CHROME_WINDOWS)
    html = desk.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    assert "Chrome — Android" in html and "Chrome — Windows" in html
    assert "10.2.2.2" in html and "10.3.3.3" in html
    assert html.count("esta sessão") == 1 and "Encerrar todas as outras" in html
    assert 'href="/minha-conta/escritorios"' in html  # Minha conta also leads to the person's firms

    response = post_form(desk, "/auth/minha-conta/sessoes", "/auth/minha-conta/sessoes/encerrar-outras", {})
    assert location_path(response) == "/auth/minha-conta/sessoes"
    assert location_path(_renew(phone)).startswith("/auth/entrar")
    assert location_path(_renew(desk)) == "/e/alfa/"
    assert phone.get("/auth/minha-conta/sessoes").status_code == 303


def test_ending_one_session_and_another_persons_session_is_404(config, make_identity, auth_db):
    make_identity()
    make_identity(ANA)
    carlos = _sign_in(config)
    ana = _sign_in(config, ANA)
    with auth_db.begin() as s:
        ana_id = s.scalars(select(Identity.id).where(Identity.email == ANA["email"])).one()
        ana_sid = s.scalars(select(AuthSession.sid).where(AuthSession.identity_id == ana_id)).one()
    response = post_form(carlos, "/auth/minha-conta/sessoes", f"/auth/minha-conta/sessoes/{ana_sid}/encerrar", {})
    assert response.status_code == 404
    assert location_path(_renew(ana)) == "/e/alfa/"  # untouched
    # Ana ends her own (current) session: she is logged out
    response = post_form(ana, "/auth/minha-conta/sessoes", f"/auth/minha-conta/sessoes/{ana_sid}/encerrar", {})
    assert location_path(response) == "/auth/entrar"
    assert location_path(_renew(ana)).startswith("/auth/entrar")


def test_minha_conta_needs_a_live_session(browser_client):
    response = browser_client.get("/auth/minha-conta/sessoes")
    assert response.status_code == 303
    assert location_path(response) == "/auth/entrar?next=/auth/minha-conta/sessoes"


def test_logout_ends_the_session_row(config, make_identity, keyring):
    make_identity()
    client = _sign_in(config)
    cookie = client.get_cookie("balcao_session").value
    post_form(client, "/auth/entrar", "/auth/sair", {})
    client.set_cookie("balcao_session", cookie)  # a copy of the old cookie is worthless
    assert location_path(_renew(client)).startswith("/auth/entrar")


def test_sessions_page_query_count_does_not_grow(config, make_identity):
    make_identity()
    client = _sign_in(config)
    with count_queries(config, "auth") as few:
        client.get("/auth/minha-conta/sessoes")
    for _i in range(5):
        _sign_in(config)
    with count_queries(config, "auth") as many:
        html = client.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    assert html.count("Encerrar</button>") == 6
    assert few.count == many.count <= 4


def test_password_change_ends_other_sessions_and_renews_this_one(config, make_identity, keyring, outbox_events):
    make_identity()
    other = _sign_in(config)
    client = _sign_in(config)
    old_sid = session_claims(client, keyring)["sid"]
    page = "/auth/minha-conta/senha"
    wrong = post_form(client, page, page, {"current_password": "nao-e-essa-123", "password": NEW_PASSWORD,
                                           "password_confirmation": NEW_PASSWORD})
    assert wrong.status_code == 422 and "Senha atual incorreta." in wrong.get_data(as_text=True)
    weak = post_form(client, page, page, {"current_password": CARLOS["password"], "password": "123456",
                                          "password_confirmation": "123456"})
    assert weak.status_code == 422 and "pelo menos 8 caracteres" in weak.get_data(as_text=True)
    mismatch = post_form(client, page, page, {"current_password": CARLOS["password"], "password": NEW_PASSWORD,
                                              "password_confirmation": NEW_PASSWORD + "x"})
    assert "As senhas não conferem." in mismatch.get_data(as_text=True)

    done = post_form(client, page, page, {"current_password": CARLOS["password"], "password": NEW_PASSWORD,
                                          "password_confirmation": NEW_PASSWORD})
    assert location_path(done) == "/auth/minha-conta/sessoes"
    assert session_claims(client, keyring)["sid"] != old_sid
    assert location_path(_renew(client)) == "/e/alfa/"
    assert location_path(_renew(other)).startswith("/auth/entrar")
    (notice,) = [e for e in outbox_events("notification.email_requested")
                 if e["payload"]["template"] == "password_changed"]
    assert set(notice["payload"]["context"]) == {"name", "changed_at"}
    assert login(other, email=CARLOS["email"], password=NEW_PASSWORD).status_code == 303


def test_a_password_reset_ends_the_sessions_of_other_browsers(config, make_identity, keyring, outbox_events):
    make_identity()
    elsewhere = _sign_in(config, ip="10.4.4.4")
    assert location_path(_renew(elsewhere)) == "/e/alfa/"
    forgetful, _apps = new_browser(config, ip="10.5.5.5")
    post_form(forgetful, "/auth/esqueci-senha", "/auth/esqueci-senha", {"email": CARLOS["email"]})
    (mail,) = outbox_events("notification.email_requested")
    path = urlsplit(keyring.unseal(mail["payload"]["sealed"])["link"]).path
    response = post_form(forgetful, path, path, {"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    assert location_path(response) == "/auth/entrar"
    assert location_path(_renew(elsewhere)).startswith("/auth/entrar")
    assert elsewhere.get("/auth/minha-conta/sessoes").status_code == 303
    assert [e["payload"]["template"] for e in outbox_events("notification.email_requested")] == [
        "password_reset", "password_changed"]


def test_renewal_accepts_an_expired_token_of_a_live_session(config, make_identity, keyring):
    """The building block for short-lived tokens: the session row decides, not the token's exp."""
    from datetime import timedelta

    from services.common.sessions import SESSION_AUDIENCE
    carlos = make_identity()
    client = _sign_in(config)
    sid = session_claims(client, keyring)["sid"]
    expired = keyring.sign("auth", {"sub": str(carlos.id), "email": carlos.email, "name": carlos.name, "sid": sid},
                           audience=SESSION_AUDIENCE, ttl=timedelta(seconds=-60))
    client.set_cookie("balcao_session", expired)
    assert session_claims(client, keyring) is None
    assert location_path(_renew(client)) == "/e/alfa/"
    assert session_claims(client, keyring)["sid"] == sid
    # a token signed by someone else is not renewed
    forged = keyring.sign("invitations", {"sub": str(carlos.id), "sid": sid, "email": carlos.email,
                                          "name": carlos.name}, audience=SESSION_AUDIENCE, ttl=timedelta(hours=1))
    client.set_cookie("balcao_session", forged)
    assert location_path(_renew(client)).startswith("/auth/entrar")


def test_timeouts_come_from_the_configuration(config, make_identity, clock):
    # BALCAO_SESSION_IDLE_MINUTES / BALCAO_SESSION_ABSOLUTE_HOURS, read by services.common.config
    import dataclasses
    make_identity()
    config = dataclasses.replace(config, session_idle_minutes=5, session_absolute_hours=1)
    client = _sign_in(config)
    clock.advance(minutes=4)
    assert location_path(_renew(client)) == "/e/alfa/"
    clock.advance(minutes=6)
    assert location_path(_renew(client)).startswith("/auth/entrar")
    client = _sign_in(config)
    for _i in range(14):
        clock.advance(minutes=4)
        assert location_path(_renew(client)) == "/e/alfa/"
    clock.advance(minutes=4)  # 60 min after login
    assert location_path(_renew(client)).startswith("/auth/entrar")


def test_wrong_current_passwords_in_minha_conta_lock_the_account_too(config, make_identity):
    make_identity()
    client = _sign_in(config)
    page = "/auth/minha-conta/senha"
    for _i in range(10):
        response = post_form(client, page, page, {"current_password": "nao-e-essa-123", "password": NEW_PASSWORD,
                                                  "password_confirmation": NEW_PASSWORD})
    assert "Conta bloqueada temporariamente" in response.get_data(as_text=True)
    right = post_form(client, page, page, {"current_password": CARLOS["password"], "password": NEW_PASSWORD,
                                           "password_confirmation": NEW_PASSWORD})
    assert right.status_code == 422 and "Conta bloqueada temporariamente" in right.get_data(as_text=True)
    mfa = "/auth/minha-conta/verificacao-em-duas-etapas"
    refused = post_form(client, mfa, mfa + "/ativar", {"password": CARLOS["password"]})
    assert refused.status_code == 422 and "Conta bloqueada temporariamente" in refused.get_data(as_text=True)
    # the lock is this browser's (a device auth recognises): another browser, even on the same IP, logs in
    other, _apps = new_browser(config)
    assert login(other, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303

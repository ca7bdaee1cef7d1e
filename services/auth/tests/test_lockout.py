"""Guessing: account locks after 10 failures (login and link page), per-IP rate limits, and a
store that every worker shares (the auth database by default, Redis when configured)."""
import dataclasses
import uuid
from urllib.parse import quote

import pytest

from services.auth.throttle import RedisStore
from testsupport import csrf_token

from .conftest import CARLOS, LOCKED, login, new_browser, post_form, session_claims

REDIS_URL = "redis://127.0.0.1:6379/0"


def _link(client, ticket, password):
    html = client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)
    return client.post("/auth/convite/vincular", data={"csrf_token": csrf_token(html), "ticket": ticket,
                                                        "password": password})


def _lock_emails(outbox_events):
    return [e for e in outbox_events("notification.email_requested") if e["payload"]["template"] == "account_locked"]


def test_ten_wrong_passwords_on_the_link_page_lock_even_the_right_one(
        browser_client, make_identity, make_ticket, outbox_events, keyring, clock):
    make_identity()
    ticket, claims = make_ticket()
    for i in range(9):
        response = _link(browser_client, ticket, f"errada-{i}-xyz")
        assert "Senha incorreta. Nenhuma conta foi vinculada." in response.get_data(as_text=True)
    tenth = _link(browser_client, ticket, "errada-10-xyz")
    assert LOCKED in tenth.get_data(as_text=True)

    right = _link(browser_client, ticket, CARLOS["password"])
    assert right.status_code == 422 and LOCKED in right.get_data(as_text=True)
    assert outbox_events("link.verified") == [] and session_claims(browser_client, keyring) is None
    # login is locked too: the lock is the account's
    assert LOCKED in login(browser_client, **{k: CARLOS[k] for k in ("email", "password")}).get_data(as_text=True)

    # exactly one e-mail for this lock, with a sealed link to reset the password
    (mail,) = _lock_emails(outbox_events)
    assert mail["payload"]["recipient"] == CARLOS["email"]
    assert set(mail["payload"]["context"]) == {"name", "locked_until"}
    assert keyring.unseal(mail["payload"]["sealed"])["link"] == "http://balcao.test/auth/esqueci-senha"

    clock.advance(minutes=14)
    assert LOCKED in _link(browser_client, ticket, CARLOS["password"]).get_data(as_text=True)
    clock.advance(minutes=2)
    after = _link(browser_client, ticket, CARLOS["password"])
    assert after.status_code == 303 and after.headers["Location"].endswith("/vinculando/" + claims["inv"])
    assert len(outbox_events("link.verified")) == 1


def test_lock_grows_on_repetition_and_a_success_resets_the_count(browser_client, make_identity, clock,
                                                                  outbox_events):
    make_identity()
    creds = {"email": CARLOS["email"]}
    for _i in range(9):
        login(browser_client, password="errada-abc-123", **creds)
    assert login(browser_client, password=CARLOS["password"], **creds).status_code == 303  # resets the count
    for _i in range(9):
        response = login(browser_client, password="errada-abc-123", **creds)
    assert LOCKED not in response.get_data(as_text=True)
    response = login(browser_client, password="errada-abc-123", **creds)
    assert LOCKED in response.get_data(as_text=True)  # 10 consecutive: first lock, 15 min
    clock.advance(minutes=16)
    for _i in range(10):
        response = login(browser_client, password="errada-abc-123", **creds)
    assert LOCKED in response.get_data(as_text=True)  # second lock: 30 min
    clock.advance(minutes=20)
    assert LOCKED in login(browser_client, password=CARLOS["password"], **creds).get_data(as_text=True)
    clock.advance(minutes=11)
    assert login(browser_client, password=CARLOS["password"], **creds).status_code == 303
    assert len(_lock_emails(outbox_events)) == 2  # one per lock


def test_an_unknown_email_is_locked_the_same_way(browser_client, make_identity, outbox_events):
    make_identity()
    answers = {}
    for email in (CARLOS["email"], "ninguem@exemplo.com.br"):
        for _i in range(11):
            response = login(browser_client, email=email, password="errada-abc-123")
        answers[email] = (response.status_code, LOCKED in response.get_data(as_text=True))
    assert answers[CARLOS["email"]] == answers["ninguem@exemplo.com.br"] == (422, True)
    assert [m["payload"]["recipient"] for m in _lock_emails(outbox_events)] == [CARLOS["email"]]


def test_the_database_lock_is_seen_by_another_worker(config, make_identity):
    make_identity()
    first, _apps = new_browser(config)
    second, _apps2 = new_browser(config, ip="10.0.0.2")
    for _i in range(10):
        login(first, email=CARLOS["email"], password="errada-abc-123")
    response = login(second, email=CARLOS["email"], password=CARLOS["password"])
    assert response.status_code == 422 and LOCKED in response.get_data(as_text=True)


def _redis_browser(config, prefix, ip):
    client, apps = new_browser(dataclasses.replace(config, redis_url=REDIS_URL), ip=ip)
    store = apps["auth"].extensions["balcao.auth.throttle"]
    assert isinstance(store, RedisStore)
    store.prefix = prefix
    return client


def test_the_redis_lock_is_seen_by_another_worker(config, make_identity, clock):
    make_identity()
    prefix = f"test:{uuid.uuid4().hex}:"
    first = _redis_browser(config, prefix, "10.0.0.1")
    second = _redis_browser(config, prefix, "10.0.0.2")
    for _i in range(10):
        login(first, email=CARLOS["email"], password="errada-abc-123")
    response = login(second, email=CARLOS["email"], password=CARLOS["password"])
    assert response.status_code == 422 and LOCKED in response.get_data(as_text=True)
    clock.advance(minutes=16)
    assert login(second, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    # another prefix (another deployment) shares nothing
    other = _redis_browser(config, f"test:{uuid.uuid4().hex}:", "10.0.0.3")
    assert login(other, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


@pytest.mark.parametrize("redis", [False, True])
def test_logins_are_rate_limited_per_ip(config, make_identity, redis, clock):
    make_identity()
    prefix = f"test:{uuid.uuid4().hex}:"
    if redis:
        busy, calm = _redis_browser(config, prefix, "10.0.0.1"), _redis_browser(config, prefix, "10.0.0.9")
    else:
        busy, calm = new_browser(config, ip="10.0.0.1")[0], new_browser(config, ip="10.0.0.9")[0]
    html = busy.get("/auth/entrar").get_data(as_text=True)
    statuses = [busy.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": f"p{i}@exemplo.com.br",
                                                 "password": "x"}).status_code for i in range(31)]
    assert statuses[:30] == [422] * 30 and statuses[30] == 429
    too_many = busy.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": CARLOS["email"],
                                                "password": CARLOS["password"]})
    assert too_many.status_code == 429 and "Muitas tentativas" in too_many.get_data(as_text=True)
    assert login(calm, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


def test_reset_requests_are_rate_limited_per_ip(browser_client, clock):
    statuses = [post_form(browser_client, "/auth/esqueci-senha", "/auth/esqueci-senha",
                          {"email": f"p{i}@exemplo.com.br"}).status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    clock.advance(minutes=1)
    assert post_form(browser_client, "/auth/esqueci-senha", "/auth/esqueci-senha",
                     {"email": "p@exemplo.com.br"}).status_code == 200


def test_many_failures_from_one_ip_block_that_ip(config, make_identity, clock):
    make_identity()
    attacker, _apps = new_browser(config, ip="10.6.6.6")
    for minute in range(4):
        for i in range(25):
            login(attacker, email=f"alvo{minute}-{i}@exemplo.com.br", password="errada-abc-123")
        clock.advance(minutes=1)
    response = login(attacker, email=CARLOS["email"], password=CARLOS["password"])
    assert response.status_code == 429
    honest, _apps2 = new_browser(config, ip="10.0.0.7")
    assert login(honest, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


def test_registration_and_link_posts_are_rate_limited_per_ip(browser_client, make_identity, make_ticket, clock):
    ticket, _claims = make_ticket(email="nova@exemplo.com.br")
    html = browser_client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)
    statuses = [browser_client.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "name": "Nova", "password": "123",
        "password_confirmation": "123"}).status_code for _i in range(11)]
    assert statuses == [422] * 10 + [429]

    make_identity()
    link_ticket, _claims = make_ticket()
    page = browser_client.get("/auth/convite?ticket=" + quote(link_ticket)).get_data(as_text=True)
    clock.advance(hours=1)  # fresh windows; the failures cap (100/h) is not reached by this test
    codes = []
    for _ in range(31):
        # different accounts are not involved: the link page's own limit (30/min per IP) answers first
        codes.append(browser_client.post("/auth/convite/vincular", data={
            "csrf_token": csrf_token(page), "ticket": link_ticket, "password": ""}).status_code)
    assert codes[:30] == [422] * 30 and codes[30] == 429


def test_the_lock_message_in_english(browser_client, make_identity):
    make_identity()
    browser_client.set_cookie("balcao_locale", "en")
    for _i in range(10):
        response = login(browser_client, email=CARLOS["email"], password="errada-abc-123")
    assert "Account temporarily locked after too many attempts." in response.get_data(as_text=True)

"""Guessing: locks keyed to the account and the client (a device auth recognises for the account,
else the IP) after 10 failures, to the account for everyone after 100; growth to 24 h and never
further; per-IP rate limits; a store that every worker shares (the auth database by default,
Redis when configured)."""
import base64
import dataclasses
import json
import uuid
from urllib.parse import quote, urlsplit

import pytest

from services.auth.throttle import RedisStore
from testsupport import csrf_token

from .conftest import ANA, CARLOS, LOCKED, login, new_browser, post_form, session_claims

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
    # login is locked too: the lock is the account's (for this client), whatever the page
    assert LOCKED in login(browser_client, **{k: CARLOS[k] for k in ("email", "password")}).get_data(as_text=True)

    # exactly one e-mail for this lock, with a sealed link to reset the password
    (mail,) = _lock_emails(outbox_events)
    assert mail["payload"]["recipient"] == CARLOS["email"]
    assert set(mail["payload"]["context"]) == {"name", "locked_until", "scope"}
    assert mail["payload"]["context"]["scope"] == "client"  # the owner's own devices still get in
    assert keyring.unseal(mail["payload"]["sealed"])["link"] == "http://balcao.test/auth/esqueci-senha"

    clock.advance(minutes=14)
    assert LOCKED in _link(browser_client, ticket, CARLOS["password"]).get_data(as_text=True)
    clock.advance(minutes=2)
    after = _link(browser_client, ticket, CARLOS["password"])
    assert after.status_code == 303 and after.headers["Location"].endswith("/vinculando/" + claims["inv"])
    assert len(outbox_events("link.verified")) == 1


def test_guessing_on_the_link_page_does_not_lock_the_owner_elsewhere(browsers, make_identity, make_ticket,
                                                                    outbox_events, clock):
    make_identity()
    ticket, claims = make_ticket()
    guesser = browsers("10.6.6.6")  # whoever got hold of the invitation link
    for i in range(10):
        response = _link(guesser, ticket, f"errada-{i}-xyz")
    assert LOCKED in response.get_data(as_text=True)
    assert LOCKED in _link(guesser, ticket, CARLOS["password"]).get_data(as_text=True)
    owner = browsers("10.0.0.7")
    linked = _link(owner, ticket, CARLOS["password"])
    assert linked.status_code == 303 and linked.headers["Location"].endswith("/vinculando/" + claims["inv"])
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
    # one e-mail: a second lock of the same account within a day is not news (no e-mail flood)...
    assert len(_lock_emails(outbox_events)) == 1
    # ...until the owner has signed in again: the next lock is
    for _i in range(10):
        response = login(browser_client, password="errada-abc-123", **creds)
    assert LOCKED in response.get_data(as_text=True)
    assert len(_lock_emails(outbox_events)) == 2


def test_an_unknown_email_is_locked_the_same_way(browser_client, make_identity, outbox_events):
    make_identity()
    answers = {}
    for email in (CARLOS["email"], "ninguem@exemplo.com.br"):
        for _i in range(11):
            response = login(browser_client, email=email, password="errada-abc-123")
        answers[email] = (response.status_code, LOCKED in response.get_data(as_text=True))
    assert answers[CARLOS["email"]] == answers["ninguem@exemplo.com.br"] == (422, True)
    assert [m["payload"]["recipient"] for m in _lock_emails(outbox_events)] == [CARLOS["email"]]


def _redis_browser(config, prefix, ip):
    client, apps = new_browser(dataclasses.replace(config, redis_url=REDIS_URL), ip=ip)
    store = apps["auth"].extensions["balcao.auth.throttle"]
    assert isinstance(store, RedisStore)
    store.prefix = prefix
    return client


@pytest.fixture(params=["database", "redis"])
def browsers(request, config):
    """Browsers on new app instances (other workers) sharing one throttle store: the auth database,
    or Redis under a prefix of this test's own."""
    prefix = f"test:{uuid.uuid4().hex}:"

    def make(ip):
        return _redis_browser(config, prefix, ip) if request.param == "redis" else new_browser(config, ip=ip)[0]
    return make


def _guess(client, times, email=CARLOS["email"]):
    for _i in range(times):
        response = login(client, email=email, password="errada-abc-123")
    return response


def test_a_lock_is_seen_by_another_worker(browsers, make_identity, clock):
    make_identity()
    first, second = browsers("10.0.0.1"), browsers("10.0.0.1")  # the same client, another worker
    _guess(first, 10)
    response = login(second, email=CARLOS["email"], password=CARLOS["password"])
    assert response.status_code == 422 and LOCKED in response.get_data(as_text=True)
    clock.advance(minutes=16)
    assert login(second, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


def test_another_redis_prefix_shares_nothing(config, make_identity, clock):
    make_identity()
    _guess(_redis_browser(config, f"test:{uuid.uuid4().hex}:", "10.0.0.1"), 10)
    other = _redis_browser(config, f"test:{uuid.uuid4().hex}:", "10.0.0.1")  # another deployment
    assert login(other, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


def test_an_attackers_ip_locks_itself_out_and_the_owner_from_another_ip_logs_in(
        browsers, make_identity, clock, outbox_events):
    make_identity()
    attacker = browsers("10.6.6.6")
    assert LOCKED in _guess(attacker, 10).get_data(as_text=True)
    # the attacker's IP stays locked, even with the right password and a fresh browser
    for client in (attacker, browsers("10.6.6.6")):
        right = login(client, email=CARLOS["email"], password=CARLOS["password"])
        assert right.status_code == 422 and LOCKED in right.get_data(as_text=True)
    # the owner, from home, gets in
    owner = browsers("10.0.0.7")
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    # the owner was told once (the lock of a client is news), and retrying every 15 minutes never
    # locks the owner out: only the attacker's IP, for longer each time
    assert len(_lock_emails(outbox_events)) == 1
    for _round in range(12):
        clock.advance(minutes=15)
        _guess(attacker, 10)
        assert login(browsers("10.0.0.8"), email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    assert LOCKED in login(attacker, email=CARLOS["email"], password=CARLOS["password"]).get_data(as_text=True)


def test_the_owners_known_device_logs_in_even_from_the_attackers_ip(browsers, make_identity, clock):
    make_identity()
    make_identity(ANA)
    owner = browsers("192.0.2.10")  # the office's one public IP, shared with the attacker
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    device = owner.get_cookie("balcao_device")
    assert device is not None and device.http_only
    claims = json.loads(base64.urlsafe_b64decode(device.value.split(".")[1] + "==="))
    assert CARLOS["email"] not in json.dumps(claims)  # bound to the account by a digest only
    post_form(owner, "/auth/entrar", "/auth/sair", {})  # the device outlives the session
    assert owner.get_cookie("balcao_session") is None and owner.get_cookie("balcao_device") is not None

    attacker = browsers("192.0.2.10")
    assert login(attacker, email=ANA["email"], password=ANA["password"]).status_code == 303  # its own account
    assert LOCKED in _guess(attacker, 10).get_data(as_text=True)  # a device of Ana's is nobody else's
    # neither a forged device cookie nor a copy of another account's lets the attacker guess more
    for value in ("forjado", attacker.get_cookie("balcao_device").value, device.value[:-4] + "AAAA"):
        attacker.set_cookie("balcao_device", value)
        assert LOCKED in login(attacker, email=CARLOS["email"], password="errada-xyz-123").get_data(as_text=True)
    newcomer = browsers("192.0.2.10")
    assert LOCKED in login(newcomer, email=CARLOS["email"], password=CARLOS["password"]).get_data(as_text=True)

    # the owner's own browser, on the same IP, still gets in
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


def test_the_account_wide_threshold_locks_everyone_and_emails_once(browsers, make_identity, clock, outbox_events):
    make_identity()
    owner = browsers("10.0.0.7")
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    # guessing spread thin over many IPs (5 each: no client lock) stops at 100 failures
    for i in range(19):
        assert LOCKED not in _guess(browsers(f"10.9.0.{i}"), 5).get_data(as_text=True)
    last = browsers("10.9.0.99")
    assert LOCKED not in _guess(last, 4).get_data(as_text=True)
    assert LOCKED in _guess(last, 1).get_data(as_text=True)  # the 100th
    # now everyone is locked out, the owner's known device too, and nothing more is counted or sent
    for client in (owner, browsers("10.0.0.8"), browsers("10.9.0.1")):
        response = login(client, email=CARLOS["email"], password=CARLOS["password"])
        assert response.status_code == 422 and LOCKED in response.get_data(as_text=True)
    (mail,) = _lock_emails(outbox_events)
    assert mail["payload"]["recipient"] == CARLOS["email"]
    assert mail["payload"]["context"]["scope"] == "account"  # nobody gets in until then
    clock.advance(minutes=16)
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    assert len(_lock_emails(outbox_events)) == 1


def test_a_password_reset_ends_the_account_wide_lock(browsers, make_identity, clock, keyring, outbox_events):
    make_identity()
    for i in range(10):  # 10 IPs × 10: each IP locks itself, and the 100th failure locks the account
        _guess(browsers(f"10.9.0.{i}"), 10)
    owner = browsers("10.0.0.7")
    assert LOCKED in login(owner, email=CARLOS["email"], password=CARLOS["password"]).get_data(as_text=True)
    post_form(owner, "/auth/esqueci-senha", "/auth/esqueci-senha", {"email": CARLOS["email"]})
    (mail,) = [e for e in outbox_events("notification.email_requested") if e["payload"]["template"] == "password_reset"]
    path = urlsplit(keyring.unseal(mail["payload"]["sealed"])["link"]).path
    new_password = "jabuticaba-madura-88"
    assert post_form(owner, path, path, {"password": new_password,
                                         "password_confirmation": new_password}).status_code == 303
    assert login(owner, email=CARLOS["email"], password=new_password).status_code == 303
    # the guessers' own locks stay
    assert LOCKED in login(browsers("10.9.0.1"), email=CARLOS["email"], password=new_password).get_data(as_text=True)


def test_a_lock_grows_from_15_minutes_to_24_hours_and_never_further(browsers, make_identity, clock):
    """The README: "lock … for 15 minutes, doubling on repetition up to 24 h, never for good"."""
    make_identity()
    attacker = browsers("10.6.6.6")
    durations = []
    assert LOCKED not in _guess(attacker, 9).get_data(as_text=True)
    for _lock in range(9):  # 90 failures: the account-wide lock (100) is not reached
        assert LOCKED in _guess(attacker, 1).get_data(as_text=True)  # the 10th consecutive failure
        minutes = 0
        while LOCKED in _guess(attacker, 1).get_data(as_text=True):  # refused: counts nothing
            clock.advance(minutes=15)
            minutes += 15
        durations.append(minutes)
        # the wrong password that was answered again was failure 1 of the next ten
        assert LOCKED not in _guess(attacker, 8).get_data(as_text=True)
    assert durations == [15, 30, 60, 120, 240, 480, 960, 1440, 1440]


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


def test_a_known_device_is_not_held_back_by_its_ips_failures_against_other_accounts(config, make_identity, clock):
    make_identity()
    owner, _apps = new_browser(config, ip="10.6.6.6")  # behind the same address as the sprayer
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    sprayer, _apps2 = new_browser(config, ip="10.6.6.6")
    for minute in range(4):
        for i in range(25):
            login(sprayer, email=f"alvo{minute}-{i}@exemplo.com.br", password="errada-abc-123")
        clock.advance(minutes=1)
    assert login(sprayer, email=CARLOS["email"], password=CARLOS["password"]).status_code == 429
    assert login(owner, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303


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

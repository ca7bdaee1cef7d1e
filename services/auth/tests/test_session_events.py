"""auth tells the other services which sessions ended (`session.ended`, by SHA-256 of the sid,
never the sid) and who logged in (`identity.logged_in`, after the second factor if any)."""
import hashlib
import json
from urllib.parse import urlsplit

import pyotp

from testsupport import csrf_token

from .conftest import (
    CARLOS,
    location_path,
    login,
    new_browser,
    post_form,
    session_claims,
)
from .test_mfa import _code_step, _enrol

NEW_PASSWORD = "jabuticaba-doce-88"


def _sha(sid):
    return hashlib.sha256(sid.encode()).hexdigest()


def _browser(config, ip="127.0.0.1"):
    client, _apps = new_browser(config, ip=ip)
    assert login(client, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    return client


def _ended(outbox_events):
    return [e["payload"] for e in outbox_events("session.ended")]


def _assert_no_raw_sid(outbox_events, *sids):
    dumped = json.dumps(outbox_events())
    for sid in sids:
        assert sid not in dumped


def test_logout_emits_session_ended_with_the_hash(config, make_identity, keyring, outbox_events):
    carlos = make_identity()
    client = _browser(config)
    sid = session_claims(client, keyring)["sid"]
    html = client.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    client.post("/auth/sair", data={"csrf_token": csrf_token(html)})
    assert _ended(outbox_events) == [{"identity_id": str(carlos.id), "session_hashes": [_sha(sid)],
                                      "reason": "logout"}]
    _assert_no_raw_sid(outbox_events, sid)


def test_ending_one_or_all_other_sessions(config, make_identity, keyring, outbox_events):
    make_identity()
    a, b, c = _browser(config), _browser(config), _browser(config)
    sid_a, sid_b, sid_c = (session_claims(x, keyring)["sid"] for x in (a, b, c))
    page = "/auth/minha-conta/sessoes"
    assert post_form(c, page, f"{page}/{sid_a}/encerrar", {}).status_code == 303
    assert post_form(c, page, f"{page}/encerrar-outras", {}).status_code == 303
    ended = _ended(outbox_events)
    assert [(e["session_hashes"], e["reason"]) for e in ended] == [([_sha(sid_a)], "ended_by_user"),
                                                                    ([_sha(sid_b)], "ended_by_user")]
    _assert_no_raw_sid(outbox_events, sid_a, sid_b, sid_c)


def test_password_change_ends_every_session(config, make_identity, keyring, outbox_events):
    make_identity()
    other, mine = _browser(config), _browser(config)
    sids = {session_claims(x, keyring)["sid"] for x in (other, mine)}
    page = "/auth/minha-conta/senha"
    post_form(mine, page, page, {"current_password": CARLOS["password"], "password": NEW_PASSWORD,
                                 "password_confirmation": NEW_PASSWORD})
    (ended,) = _ended(outbox_events)
    assert ended["reason"] == "password_changed" and set(ended["session_hashes"]) == {_sha(s) for s in sids}


def test_password_reset_and_not_me_end_sessions(config, make_identity, keyring, outbox_events):
    make_identity()
    client = _browser(config)
    sid = session_claims(client, keyring)["sid"]
    page = "/auth/minha-conta/nao-fui-eu"
    assert post_form(client, page, page, {}).status_code == 200
    assert [(e["session_hashes"], e["reason"]) for e in _ended(outbox_events)] == [([_sha(sid)], "not_me")]
    # the reset requested by "Não fui eu", used from another browser, ends the session opened since
    again = _browser(config)
    sid2 = session_claims(again, keyring)["sid"]
    link = keyring.unseal(outbox_events("notification.email_requested")[-1]["payload"]["sealed"])["link"]
    path = urlsplit(link).path
    post_form(again, path, path, {"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    assert [(e["session_hashes"], e["reason"]) for e in _ended(outbox_events)][-1] == ([_sha(sid2)], "password_reset")


def test_idle_and_absolute_expiry_found_at_renewal(config, make_identity, keyring, outbox_events, clock):
    make_identity()
    client = _browser(config)
    sid = session_claims(client, keyring)["sid"]
    clock.advance(minutes=31)
    assert location_path(client.get("/auth/sessao/renovar?next=/")).startswith("/auth/entrar")
    assert [(e["session_hashes"], e["reason"]) for e in _ended(outbox_events)] == [([_sha(sid)], "idle")]
    client = _browser(config)
    sid = session_claims(client, keyring)["sid"]
    for _i in range(12 * 4):
        clock.advance(minutes=15)
        client.get("/auth/sessao/renovar?next=/")
    assert _ended(outbox_events)[-1] == {"identity_id": _ended(outbox_events)[0]["identity_id"],
                                         "session_hashes": [_sha(sid)], "reason": "expired"}


def test_logged_in_at_each_login_with_the_ip(config, make_identity, outbox_events, clock):
    carlos = make_identity()
    _browser(config, ip="198.51.100.7")
    (event,) = outbox_events("identity.logged_in")
    assert event["payload"]["identity_id"] == str(carlos.id) and event["payload"]["ip"] == "198.51.100.7"
    assert event["payload"]["at"].startswith(clock().isoformat()[:16])
    client, _apps = new_browser(config)
    login(client, email=CARLOS["email"], password="errada-de-proposito-1")
    assert len(outbox_events("identity.logged_in")) == 1  # a failed login is no login


def test_logged_in_only_after_the_second_factor(config, make_identity, outbox_events, clock):
    make_identity()
    secret, _codes = _enrol(_browser(config), clock)
    clock.advance(seconds=30)
    client, _apps = new_browser(config)
    login(client, email=CARLOS["email"], password=CARLOS["password"])
    assert len(outbox_events("identity.logged_in")) == 1  # the first browser's login only
    assert _code_step(client, pyotp.TOTP(secret).at(clock())).status_code == 303
    assert len(outbox_events("identity.logged_in")) == 2

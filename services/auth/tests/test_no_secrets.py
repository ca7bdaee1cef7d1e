"""No password, password hash or raw reset token in any event payload or log line."""
import json
import logging
from urllib.parse import quote, urlsplit

from sqlalchemy import select

from services.auth.models import Identity
from testsupport import csrf_token

from .conftest import ANA, BETA, CARLOS

NEW_PASSWORD = "jabuticaba-madura-88"


def test_events_and_logs_carry_no_secret(browser_client, make_ticket, make_identity, outbox_events, keyring,
                                         auth_db, caplog):
    caplog.set_level(logging.DEBUG)
    make_identity(ANA)
    # Carlos registers through an invitation of Beta...
    ticket, _ = make_ticket(firm=BETA)
    html = browser_client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)
    browser_client.post("/auth/convite/registrar", data={
        "csrf_token": csrf_token(html), "ticket": ticket, "name": CARLOS["name"],
        "password": CARLOS["password"], "password_confirmation": CARLOS["password"]})
    # ...forgets the password, resets it...
    token = csrf_token(browser_client.get("/auth/esqueci-senha").get_data(as_text=True))
    browser_client.post("/auth/esqueci-senha", data={"csrf_token": token, "email": CARLOS["email"]})
    link = keyring.unseal(outbox_events("notification.email_requested")[0]["payload"]["sealed"])["link"]
    raw_token = urlsplit(link).path.rsplit("/", 1)[1]
    browser_client.post(urlsplit(link).path, data={"csrf_token": token, "password": NEW_PASSWORD,
                                                   "password_confirmation": NEW_PASSWORD})
    # ...and links another firm with the new password (and a wrong one first).
    ticket2, _ = make_ticket(firm={"firm": "Gama Assessoria", "firm_slug": "gama"})
    html = browser_client.get("/auth/convite?ticket=" + quote(ticket2)).get_data(as_text=True)
    for password in ("errada-de-proposito-1", NEW_PASSWORD):
        browser_client.post("/auth/convite/vincular", data={"csrf_token": csrf_token(html), "ticket": ticket2,
                                                            "password": password})
    with auth_db.begin() as s:
        hashes = [i.password_hash for i in s.scalars(select(Identity))]

    events = outbox_events()
    # (the reset request is auth's own event, handled by auth's consumer: the reset e-mail; the reset
    # ends the registration's session: session.ended; linking is a login: identity.logged_in)
    assert [e["type"] for e in events] == ["identity.registered", "identity.registered", "link.verified",
                                           "password_reset.requested", "notification.email_requested",
                                           "session.ended",
                                           "notification.email_requested", "link.verified", "identity.logged_in"]
    dumped = json.dumps(events)
    secrets = [CARLOS["password"], ANA["password"], NEW_PASSWORD, "errada-de-proposito-1", raw_token,
               *hashes, *(h.rsplit("$", 1)[1] for h in hashes)]
    for secret in secrets:
        assert secret not in dumped
        assert secret not in caplog.text


def test_mfa_secrets_and_session_ids_stay_out_of_events_and_logs(config, make_identity, outbox_events, clock,
                                                                  auth_db, caplog):
    from services.auth.models import AuthSession, RecoveryCode

    from .conftest import login, new_browser
    from .test_mfa import _code_step, _enrol, _signed_in
    caplog.set_level(logging.DEBUG)
    make_identity()
    client = _signed_in(config)
    secret, codes = _enrol(client, clock)
    clock.advance(seconds=30)
    other, _apps = new_browser(config)
    login(other, email=CARLOS["email"], password=CARLOS["password"])
    _code_step(other, codes[0])
    for _i in range(10):  # a lock, and its e-mail
        login(other, email=CARLOS["email"], password="errada-de-proposito-2")
    with auth_db.begin() as s:
        code_hashes = list(s.scalars(select(RecoveryCode.code_hash)))
        sids = list(s.scalars(select(AuthSession.sid)))
    events = outbox_events()
    assert {e["payload"].get("template") for e in events} >= {"mfa_changed", "account_locked"}
    dumped = json.dumps(events)
    for value in [secret, CARLOS["password"], "errada-de-proposito-2", *codes,
                  *(c.replace("-", "") for c in codes), *code_hashes, *sids]:
        assert value not in dumped
        assert value not in caplog.text

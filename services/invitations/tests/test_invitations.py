"""Invitations: tokens, expiry, resend, acceptance — through the service functions, the
event handlers (the same `handle_message` the broker consumers use) and the e-mailed link."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from services.common.events import make_envelope
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message, utcnow
from services.common.runtime import database
from services.invitations import consumers, models
from services.invitations.models import Invitation
from services.invitations.services import accept_invitation, issue_invitation

ALFA = {"firm_id": uuid.uuid4(), "firm_name": "Contabilidade Alfa", "firm_slug": "alfa"}
BETA = {"firm_id": uuid.uuid4(), "firm_name": "Escritório Beta", "firm_slug": "beta"}
INVALID_TEXT = "Este convite é inválido, já foi usado ou expirou."


@pytest.fixture
def db(config):
    return database("invitations", config)


@pytest.fixture
def keyring(config):
    return KeyRing(config.keys_dir)


def issue(config, db, *, firm=ALFA, client_user_id=None, email="Carlos@Example.com ", name="Carlos Souza",
          resent=False, ttl=timedelta(days=7)):
    with db.begin() as session:
        inv = issue_invitation(session, keyring=KeyRing(config.keys_dir), public_url=config.public_url, ttl=ttl,
                               subject_id=client_user_id or uuid.uuid4(), email=email, name=name,
                               resent=resent, **firm)
    return inv


def outbox_events(db, event_type=None):
    with db.begin() as session:
        rows = session.execute(select(models.outbox.c.envelope).order_by(models.outbox.c.seq)).scalars().all()
    return [e for e in rows if event_type is None or e["type"] == event_type]


def link_of(keyring, db, invitation_id) -> str:
    [req] = [e for e in outbox_events(db, "notification.email_requested")
             if e["payload"]["reference"] == f"invitation:{invitation_id}"]
    return keyring.unseal(req["payload"]["sealed"])["link"]


def token_of(keyring, db, invitation_id) -> str:
    return link_of(keyring, db, invitation_id).rsplit("/", 1)[1]


def copy_link_of(keyring, db, invitation_id) -> str:
    """The link staff see under "Copiar link do convite" (invitation.created.sealed_link, sealed to users)."""
    [created] = [e for e in outbox_events(db, "invitation.created")
                 if e["payload"]["invitation_id"] == str(invitation_id)]
    return keyring.unseal(created["payload"]["sealed_link"], recipient="users")["link"]


def ticket_claims_of(keyring, response) -> dict:
    assert response.status_code == 303, response.status_code
    [ticket] = parse_qs(urlsplit(response.headers["Location"]).query)["ticket"]
    return keyring.verify("invitations", ticket, audience="balcao-invitation")


def deliver(config, db, event_type, payload):
    envelope = make_envelope(event_type, payload, correlation_id="test")
    handler = consumers.HANDLERS[event_type]
    return handle_message(db, models.processed, "invitations", handler, envelope, config=config), envelope


def get_invitation(db, invitation_id) -> Invitation:
    with db.begin() as session:
        return session.get(Invitation, invitation_id)


def path_of(link: str) -> str:
    return urlsplit(link).path


# ------------------------------------------------------------------ issuing

def test_token_has_at_least_128_bits_and_is_stored_only_hashed(config, db, keyring):
    inv = issue(config, db)
    raw = token_of(keyring, db, inv.id)
    copy = copy_link_of(keyring, db, inv.id).rsplit("/", 1)[1]
    assert raw != copy
    for token in (raw, copy):
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 16
    stored = get_invitation(db, inv.id)
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert stored.copy_token_hash == hashlib.sha256(copy.encode()).hexdigest()
    # Grep every column of every row of every table (outbox included) for the raw tokens.
    with db.begin() as session:
        for table in models.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                for value in row:
                    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
                    assert raw not in text and copy not in text, f"raw token found in {table.name}"


def test_issue_normalizes_email_and_emits_created_and_email_request(config, db, keyring):
    client_user_id = uuid.uuid4()
    inv = issue(config, db, client_user_id=client_user_id)
    assert get_invitation(db, inv.id).email == "carlos@example.com"
    [created] = outbox_events(db, "invitation.created")
    assert created["payload"] == {"invitation_id": str(inv.id), "firm_id": str(ALFA["firm_id"]),
                                  "client_user_id": str(client_user_id), "subject": "client_user",
                                  "expires_at": created["payload"]["expires_at"], "resent": False,
                                  "sealed_link": created["payload"]["sealed_link"]}
    # the copy link travels sealed to users (staff copy it), never in clear, and only users can open
    # it; it is not the e-mailed link
    copy_link = keyring.unseal(created["payload"]["sealed_link"], recipient="users")["link"]
    assert copy_link.startswith(f"{config.public_url}/convite/") and copy_link != link_of(keyring, db, inv.id)
    from cryptography.exceptions import InvalidTag
    with pytest.raises(InvalidTag):
        keyring.unseal(created["payload"]["sealed_link"], recipient="notifier")
    assert token_of(keyring, db, inv.id) not in json.dumps(created)
    assert copy_link.rsplit("/", 1)[1] not in json.dumps(outbox_events(db))
    [req] = outbox_events(db, "notification.email_requested")
    p = req["payload"]
    assert p["template"] == "invitation" and p["recipient"] == "carlos@example.com" and p["locale"] == "pt_BR"
    assert p["context"]["firm_name"] == "Contabilidade Alfa" and p["context"]["name"] == "Carlos Souza"
    assert p["idempotency_key"] == p["reference"] == f"invitation:{inv.id}"
    assert "link" not in json.dumps(p["context"])


def test_sealed_link_opens_the_invitation(config, db, keyring, browser_client):
    inv = issue(config, db)
    link = link_of(keyring, db, inv.id)
    assert link.startswith(f"{config.public_url}/convite/")
    resp = browser_client.get(path_of(link))
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/auth/convite"
    [ticket] = parse_qs(location.query)["ticket"]
    claims = keyring.verify("invitations", ticket, audience="balcao-invitation")
    assert claims["inv"] == str(inv.id) and claims["email"] == "carlos@example.com"
    assert claims["name"] == "Carlos Souza" and claims["firm"] == "Contabilidade Alfa"
    assert claims["firm_slug"] == "alfa"
    assert claims["via"] == "email"  # came through the person's inbox
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_the_copy_link_opens_the_invitation_as_a_copy(config, db, keyring, browser_client):
    """Staff's "Copiar link do convite" link did not come through the person's inbox: its ticket
    says so, and auth then asks for a code sent to the e-mail."""
    inv = issue(config, db)
    resp = browser_client.get(path_of(copy_link_of(keyring, db, inv.id)))
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    claims = ticket_claims_of(keyring, resp)
    assert (claims["inv"], claims["email"], claims["via"]) == (str(inv.id), "carlos@example.com", "copy")


def test_an_invitation_from_before_copy_links_treats_its_emailed_link_as_a_copy(config, db, keyring,
                                                                               browser_client):
    """Before copy links existed, staff copied the e-mailed link itself: such a link must prove the
    e-mail too."""
    inv = issue(config, db)
    with db.begin() as session:
        session.execute(update(Invitation).where(Invitation.id == inv.id).values(copy_token_hash=None))
    claims = ticket_claims_of(keyring, browser_client.get(path_of(link_of(keyring, db, inv.id))))
    assert claims["via"] == "copy"
    assert browser_client.get(path_of(copy_link_of(keyring, db, inv.id))).status_code == 404


def test_unknown_or_malformed_link_shows_the_invalid_page(config, db, browser_client):
    issue(config, db)
    for path in ("/convite/" + "A" * 43, "/convite/curto", "/convite/" + "x" * 300):
        resp = browser_client.get(path)
        assert resp.status_code == 404
        assert INVALID_TEXT in resp.get_data(as_text=True)
        assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_resend_voids_the_previous_link(config, db, keyring, browser_client):
    client_user_id = uuid.uuid4()
    payload = {**ALFA, "client_user_id": client_user_id, "email": "carlos@example.com", "name": "Carlos Souza"}
    (outcome, _), _ = deliver(config, db, "client_user.access_activated", {**payload, "send_now": True})
    assert outcome == Outcome.HANDLED
    [first] = outbox_events(db, "invitation.created")
    old_token = token_of(keyring, db, first["payload"]["invitation_id"])

    deliver(config, db, "client_user.invitation_requested", payload)
    created = outbox_events(db, "invitation.created")
    assert [c["payload"]["resent"] for c in created] == [False, True]
    second_id = created[1]["payload"]["invitation_id"]
    new_token = token_of(keyring, db, second_id)

    old = get_invitation(db, uuid.UUID(first["payload"]["invitation_id"]))
    assert (old.status, old.voided_reason) == ("voided", "superseded")
    [voided] = outbox_events(db, "invitation.voided")
    assert voided["payload"] == {"invitation_id": first["payload"]["invitation_id"], "firm_id": str(ALFA["firm_id"]),
                                 "client_user_id": str(client_user_id), "reason": "superseded",
                                 "subject": "client_user"}
    resp = browser_client.get(f"/convite/{old_token}")
    assert resp.status_code == 404 and INVALID_TEXT in resp.get_data(as_text=True)
    resp = browser_client.get(f"/convite/{new_token}")
    assert resp.status_code == 303
    [ticket] = parse_qs(urlsplit(resp.headers["Location"]).query)["ticket"]
    assert KeyRing(config.keys_dir).verify("invitations", ticket, audience="balcao-invitation")["inv"] == second_id


def test_activation_without_send_now_issues_nothing(config, db):
    deliver(config, db, "client_user.access_activated",
            {**ALFA, "client_user_id": uuid.uuid4(), "email": "c@example.com", "name": "C", "send_now": False})
    assert outbox_events(db) == []


def test_resend_does_not_touch_other_client_users(config, db, keyring, browser_client):
    """Resending Carlos's invitation at Alfa voids only that one: Dora's at Alfa, and Carlos's own
    at Beta (same e-mail, another firm's client user), stay pending and their links still open."""
    carlos_at_alfa, dora_at_alfa, carlos_at_beta = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for firm, client_user_id, email, name in ((ALFA, carlos_at_alfa, "carlos@example.com", "Carlos Souza"),
                                              (ALFA, dora_at_alfa, "dora@example.com", "Dora Lima"),
                                              (BETA, carlos_at_beta, "carlos@example.com", "Carlos Souza")):
        deliver(config, db, "client_user.access_activated",
                {**firm, "client_user_id": client_user_id, "email": email, "name": name, "send_now": True})
    created = {e["payload"]["client_user_id"]: e["payload"]["invitation_id"]
               for e in outbox_events(db, "invitation.created")}
    tokens = {cu: token_of(keyring, db, inv) for cu, inv in created.items()}

    (outcome, _), _ = deliver(config, db, "client_user.invitation_requested",
                              {**ALFA, "client_user_id": carlos_at_alfa, "email": "carlos@example.com",
                               "name": "Carlos Souza"})
    assert outcome == Outcome.HANDLED
    resent = [e["payload"] for e in outbox_events(db, "invitation.created") if e["payload"]["resent"]]
    assert [r["client_user_id"] for r in resent] == [str(carlos_at_alfa)]  # it really was resent

    old = get_invitation(db, uuid.UUID(created[str(carlos_at_alfa)]))
    assert (old.status, old.voided_reason) == ("voided", "superseded")
    assert browser_client.get(f"/convite/{tokens[str(carlos_at_alfa)]}").status_code == 404
    for other in (dora_at_alfa, carlos_at_beta):
        assert get_invitation(db, uuid.UUID(created[str(other)])).status == "pending", other
        assert browser_client.get(f"/convite/{tokens[str(other)]}").status_code == 303, other


def test_expired_link_shows_the_invalid_page(config, db, keyring, browser_client):
    inv = issue(config, db)
    token = token_of(keyring, db, inv.id)
    with db.begin() as session:
        session.execute(update(Invitation).where(Invitation.id == inv.id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = browser_client.get(f"/convite/{token}")
    assert resp.status_code == 404 and INVALID_TEXT in resp.get_data(as_text=True)


@pytest.mark.parametrize("reason", ["deactivated", "deleted"])
def test_access_revoked_voids_pending_invitation(config, db, keyring, browser_client, reason):
    client_user_id = uuid.uuid4()
    inv = issue(config, db, client_user_id=client_user_id)
    other = issue(config, db)  # another client user's invitation is not touched
    token = token_of(keyring, db, inv.id)
    deliver(config, db, "client_user.access_revoked",
            {"firm_id": ALFA["firm_id"], "client_user_id": client_user_id, "reason": reason})
    assert get_invitation(db, inv.id).status == "voided"
    assert get_invitation(db, other.id).status == "pending"
    assert browser_client.get(f"/convite/{token}").status_code == 404
    assert browser_client.get(path_of(copy_link_of(keyring, db, inv.id))).status_code == 404
    [voided] = outbox_events(db, "invitation.voided")
    assert voided["payload"] == {"invitation_id": str(inv.id), "firm_id": str(ALFA["firm_id"]),
                                 "client_user_id": str(client_user_id), "reason": f"access_{reason}",
                                 "subject": "client_user"}
    # revoked again (nothing pending any more): nothing more is voided
    deliver(config, db, "client_user.access_revoked",
            {"firm_id": ALFA["firm_id"], "client_user_id": client_user_id, "reason": reason})
    assert len(outbox_events(db, "invitation.voided")) == 1


# ------------------------------------------------------------------ accepting

def link_verified(config, db, invitation_id, identity_id, email="carlos@example.com"):
    return deliver(config, db, "link.verified",
                   {"invitation_id": invitation_id, "identity_id": identity_id, "email": email})


def test_accept_happy_path(config, db, keyring, browser_client):
    client_user_id = uuid.uuid4()
    inv = issue(config, db, client_user_id=client_user_id)
    identity_id = uuid.uuid4()
    (outcome, _), _ = link_verified(config, db, inv.id, identity_id, email="CARLOS@example.com")
    assert outcome == Outcome.HANDLED
    stored = get_invitation(db, inv.id)
    assert stored.status == "accepted" and stored.accepted_identity_id == identity_id
    assert stored.accepted_at is not None
    [accepted] = outbox_events(db, "invitation.accepted")
    assert accepted["payload"] == {"invitation_id": str(inv.id), "firm_id": str(ALFA["firm_id"]),
                                   "client_user_id": str(client_user_id), "identity_id": str(identity_id),
                                   "subject": "client_user"}
    # A used link no longer opens.
    assert browser_client.get(f"/convite/{token_of(keyring, db, inv.id)}").status_code == 404


def test_accept_is_idempotent_on_a_duplicate_message(config, db):
    inv = issue(config, db)
    identity_id = uuid.uuid4()
    envelope = make_envelope("link.verified", {"invitation_id": inv.id, "identity_id": identity_id,
                                               "email": "carlos@example.com"}, correlation_id="t")
    handler = consumers.HANDLERS["link.verified"]
    first, _ = handle_message(db, models.processed, "invitations", handler, envelope, config=config)
    second, _ = handle_message(db, models.processed, "invitations", handler, envelope, config=config)
    assert (first, second) == (Outcome.HANDLED, Outcome.DUPLICATE)
    # A second, distinct proof for the same identity changes nothing either.
    link_verified(config, db, inv.id, identity_id)
    assert len(outbox_events(db, "invitation.accepted")) == 1
    assert outbox_events(db, "invitation.acceptance_refused") == []


def refusals(db):
    return [e["payload"]["reason"] for e in outbox_events(db, "invitation.acceptance_refused")]


def test_accept_refused_when_voided(config, db):
    client_user_id = uuid.uuid4()
    old = issue(config, db, client_user_id=client_user_id)
    issue(config, db, client_user_id=client_user_id, resent=True)
    link_verified(config, db, old.id, uuid.uuid4())
    assert get_invitation(db, old.id).status == "voided"
    assert refusals(db) == ["not_pending"]
    assert outbox_events(db, "invitation.accepted") == []


def test_accept_refused_when_accepted_by_another_identity(config, db):
    inv = issue(config, db)
    first = uuid.uuid4()
    link_verified(config, db, inv.id, first)
    link_verified(config, db, inv.id, uuid.uuid4())
    assert refusals(db) == ["not_pending"]
    assert get_invitation(db, inv.id).accepted_identity_id == first


def test_accept_refused_when_expired(config, db):
    inv = issue(config, db)
    with db.begin() as session:
        session.execute(update(Invitation).where(Invitation.id == inv.id)
                        .values(expires_at=utcnow() - timedelta(minutes=1)))
    link_verified(config, db, inv.id, uuid.uuid4())
    assert refusals(db) == ["expired"]
    assert get_invitation(db, inv.id).status == "pending"


def test_accept_refused_for_another_email(config, db):
    """The Keycloak lesson: a proof for another e-mail never accepts this invitation."""
    inv = issue(config, db)
    identity_id = uuid.uuid4()
    link_verified(config, db, inv.id, identity_id, email="mallory@example.com")
    assert refusals(db) == ["email_mismatch"]
    assert get_invitation(db, inv.id).status == "pending"
    [refused] = outbox_events(db, "invitation.acceptance_refused")
    assert refused["payload"]["identity_id"] == str(identity_id)


def test_accept_of_unknown_invitation_does_nothing(config, db):
    with db.begin() as session:
        accept_invitation(session, invitation_id=uuid.uuid4(), identity_id=uuid.uuid4(), email="a@example.com")
    assert outbox_events(db) == []


def test_handlers_match_the_catalogue():
    from services.common.events import consumed_by
    assert set(consumers.HANDLERS) == consumed_by("invitations")


def test_invalid_page_in_english(config, browser_client):
    from pathlib import Path

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    po = Path(__file__).parents[1] / "translations" / "en" / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:  # `make translations` builds it too
        with po.open("rb") as src, mo.open("wb") as dst:
            write_mo(dst, read_po(src))
    browser_client.set_cookie("balcao_locale", "en")
    resp = browser_client.get("/convite/" + "A" * 43)
    assert resp.status_code == 404
    assert "This invitation is invalid, has already been used or has expired." in resp.get_data(as_text=True)


def test_raw_token_never_logged(config, db, keyring, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    inv = issue(config, db)
    link_verified(config, db, inv.id, uuid.uuid4(), email="mallory@example.com")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(inv.id) in logged
    assert token_of(keyring, db, inv.id) not in logged and "/convite/" not in logged

"""The invitation's state reaches auth through events, and auth's pages go by it: a ticket handed
out by /convite/<token> registers or links only while its invitation is pending.

The chain runs through the same handlers the broker consumers use (`bus`): invitations issues,
resends, voids and accepts; auth's projection follows (invitation.created / .voided / .accepted).
"""
from __future__ import annotations

import uuid
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import select, text

from services.auth import invites
from services.auth import models as auth_models
from services.common.keys import KeyRing
from services.common.runtime import database
from services.invitations import models
from services.invitations.models import Invitation
from testsupport import csrf_token

from .test_invitations import get_invitation, outbox_events, path_of, token_of

INVALID = "Este link de convite é inválido ou expirou. Peça um novo convite ao seu escritório."
PASSWORD = "girassol-azul-42"


@pytest.fixture
def db(config):
    return database("invitations", config)


@pytest.fixture
def auth_db(config):
    return database("auth", config)


def _client_user(config):
    """Firm Alfa registers Carlos with Envie agora, through the users service (the chain's start)."""
    from services.users import services as users_services
    from services.users.tests.conftest import make_cnpj
    with database("users", config).begin() as s:
        firm = users_services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(11),
                                          admin_identity_id=uuid.uuid4(), admin_name="Ana",
                                          admin_email="ana@alfa.example")
        cu = users_services.register_client_user(s, firm=firm, name="Carlos Souza", email="carlos@example.com",
                                                 access="now")
        return firm.id, cu.id


def _staff(config, firm_id, client_user_id, action: str):
    """Staff press Reenviar convite / Desativar / Excluir on the client user's page."""
    from services.users import models as users_models
    from services.users import services as users_services
    with database("users", config).begin() as s:
        firm, cu = s.get(users_models.Firm, firm_id), s.get(users_models.ClientUser, client_user_id)
        assert firm is not None and cu is not None
        if action == "resend":
            users_services.resend_invitation(s, firm=firm, client_user=cu, cooldown_seconds=0)
        elif action == "deactivated":
            users_services.deactivate_client_user(s, firm=firm, client_user=cu)
        else:
            users_services.delete_client_user(s, firm=firm, client_user=cu)


def _latest_invitation(db) -> uuid.UUID:
    return uuid.UUID(outbox_events(db, "invitation.created")[-1]["payload"]["invitation_id"])


def _ticket(browser_client, config, db, invitation_id) -> str:
    response = browser_client.get(f"/convite/{token_of(KeyRing(config.keys_dir), db, invitation_id)}")
    assert response.status_code == 303
    [ticket] = parse_qs(urlsplit(response.headers["Location"]).query)["ticket"]
    return ticket


def _register(client, ticket):
    token = csrf_token(client.get("/auth/entrar").get_data(as_text=True))
    return client.post("/auth/convite/registrar", data={"csrf_token": token, "ticket": ticket, "name": "Carlos",
                                                       "password": PASSWORD, "password_confirmation": PASSWORD})


def _identities(auth_db):
    with auth_db.begin() as s:
        return s.execute(select(auth_models.Identity.email)).scalars().all()


def _auth_state(auth_db, invitation_id):
    with auth_db.begin() as s:
        return invites.invitation_status(s, invitation_id=invitation_id)


def test_a_resent_invitations_old_ticket_registers_nothing(config, db, auth_db, bus, browser_client):
    """The issue's case: /convite/T1 handed out a ticket; staff press Reenviar convite; the old ticket
    must not register the login, and the person's new link still shows the registration page."""
    firm_id, client_user_id = _client_user(config)
    bus.pump()
    first = _latest_invitation(db)
    assert _auth_state(auth_db, first) == invites.USABLE
    old_ticket = _ticket(browser_client, config, db, first)

    _staff(config, firm_id, client_user_id, "resend")
    bus.pump()  # invitation.voided (superseded) and the new invitation.created reach auth
    second = _latest_invitation(db)
    assert second != first
    assert _auth_state(auth_db, first) == invites.VOID
    assert [e["payload"]["reason"] for e in bus.of_type("invitation.voided")] == ["superseded"]

    response = _register(browser_client, old_ticket)
    assert response.status_code == 404 and INVALID in unescape(response.get_data(as_text=True))
    assert _identities(auth_db) == []
    page = browser_client.get("/auth/convite?ticket=" + quote(_ticket(browser_client, config, db, second)))
    html = unescape(page.get_data(as_text=True))
    assert page.status_code == 200 and "Registrar" in html and "já tem acesso" not in html


@pytest.mark.parametrize("reason", ["deactivated", "deleted"])
def test_a_revoked_access_voids_the_ticket_in_auth(config, db, auth_db, bus, browser_client, reason):
    firm_id, client_user_id = _client_user(config)
    bus.pump()
    invitation_id = _latest_invitation(db)
    ticket = _ticket(browser_client, config, db, invitation_id)
    _staff(config, firm_id, client_user_id, reason)
    bus.pump()
    assert _auth_state(auth_db, invitation_id) == invites.VOID
    with auth_db.begin() as s:
        assert s.get(auth_models.InvitationState, invitation_id).voided_reason == f"access_{reason}"
    assert _register(browser_client, ticket).status_code == 404
    assert _identities(auth_db) == []


def test_an_accepted_invitations_ticket_registers_and_links_nothing_more(config, db, auth_db, bus, browser_client):
    _client_user(config)
    bus.pump()
    invitation_id = _latest_invitation(db)
    ticket = _ticket(browser_client, config, db, invitation_id)
    assert _register(browser_client, ticket).status_code == 303
    bus.pump()  # link.verified → invitations accepts → invitation.accepted → auth
    assert get_invitation(db, invitation_id).status == "accepted"
    assert _auth_state(auth_db, invitation_id) == invites.USED
    page = browser_client.get("/auth/convite?ticket=" + quote(ticket))
    assert page.status_code == 404 and INVALID in unescape(page.get_data(as_text=True))


# ---------------------------------------------------------------- the upgrade

def test_the_upgrade_announces_pending_invitations_to_auth(tmp_path, config, auth_db):
    """Invitations pending when this version is deployed keep working: the migration records their
    invitation.created again, which auth's consumer turns into pending rows of its projection."""
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from alembic.config import Config as AlembicConfig

    from services.auth import consumers as auth_consumers
    from services.common.db import Database
    from services.common.events import parse_envelope
    from services.common.messaging import Outcome, handle_message

    old = Database(f"sqlite:///{tmp_path / 'invitations.sqlite3'}", service="invitations")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(models.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = old
    command.upgrade(cfg, "7d03fe5a8589")
    now = datetime.now(UTC)
    rows = {"pending": (uuid.uuid4(), "pending", now + timedelta(days=3)),
            "expired": (uuid.uuid4(), "pending", now - timedelta(days=1)),
            "voided": (uuid.uuid4(), "voided", now + timedelta(days=3))}
    with old.engine.begin() as conn:
        for name, (inv_id, status, expires_at) in rows.items():
            conn.execute(text(
                "INSERT INTO invitations (id, firm_id, firm_name, firm_slug, client_user_id, email, name, token_hash, "
                "status, created_at, expires_at) VALUES (:id, :firm, 'Alfa', 'alfa', :cu, 'c@example.com', 'C', :th, "
                ":status, :now, :exp)"),
                {"id": inv_id.hex, "firm": uuid.uuid4().hex, "cu": uuid.uuid4().hex, "th": name * 8,
                 "status": status, "now": now, "exp": expires_at})
    command.upgrade(cfg, "head")
    with old.engine.begin() as conn:
        envelopes = [row[0] for row in conn.execute(select(models.outbox.c.envelope))]
    assert [e["payload"]["invitation_id"] for e in envelopes] == [str(rows["pending"][0])]
    envelope, _payload = parse_envelope(envelopes[0])  # valid as today's catalogue reads it
    assert envelope["type"] == "invitation.created"
    outcome, _info = handle_message(auth_db, auth_models.processed, "auth",
                                    auth_consumers.HANDLERS["invitation.created"], envelopes[0], config=config)
    assert outcome == Outcome.HANDLED
    assert _auth_state(auth_db, rows["pending"][0]) == invites.USABLE
    with old.begin() as s:  # the old invitation has no copy token: its e-mailed link counts as a copy
        assert s.get(Invitation, rows["pending"][0]).copy_token_hash is None
    old.dispose()


def test_the_copy_link_of_a_chain_invitation_asks_for_the_code(config, db, bus, browser_client):
    keyring = KeyRing(config.keys_dir)
    _client_user(config)
    bus.pump()
    invitation_id = _latest_invitation(db)
    [created] = [e for e in outbox_events(db, "invitation.created")
                 if e["payload"]["invitation_id"] == str(invitation_id)]
    copy_link = keyring.unseal(created["payload"]["sealed_link"], recipient="users")["link"]
    response = browser_client.get(path_of(copy_link))
    page = browser_client.get(response.headers["Location"])
    html = unescape(page.get_data(as_text=True))
    assert page.status_code == 200 and "Confirme seu e-mail" in html and "Registrar" not in html

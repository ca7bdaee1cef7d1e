"""A ticket registers or links only while its invitation is pending — as auth's projection of the
invitations service's events says at that moment, not as the ticket's own 24 h expiry says.

Every state on registration, on Vincular Contas and on the second-factor step of a link: a voided
(resent, deactivated, deleted), accepted or expired invitation gets "Convite inválido ou expirado",
nothing created, nothing emitted; an invitation auth does not know yet gets a "try again in a
moment" page, and works as soon as invitation.created arrives.
"""
from datetime import timedelta
from html import unescape
from urllib.parse import quote

import pyotp
import pytest
from sqlalchemy import select

from services.auth import consumers, invites
from services.auth.models import Identity, InvitationState
from services.common.events import consumed_by, make_envelope
from services.common.messaging import Outcome, handle_message
from testsupport import csrf_token

from .conftest import CARLOS, location_path, login, new_browser, post_form, session_claims, set_invitation_state

INVALID = "Este link de convite é inválido ou expirou. Peça um novo convite ao seu escritório."
WAIT = "Ainda estamos registrando este convite. Aguarde alguns segundos e tente novamente."
DEAD_STATES = ["voided", "accepted", "expired"]


def _page(client, ticket):
    return client.get("/auth/convite?ticket=" + quote(ticket))


def _token(client) -> str:
    return csrf_token(client.get("/auth/entrar").get_data(as_text=True))


def _identities(auth_db):
    with auth_db.begin() as s:
        return s.scalars(select(Identity)).all()


def _register(client, ticket, password=CARLOS["password"]):
    return client.post("/auth/convite/registrar", data={
        "csrf_token": _token(client), "ticket": ticket, "name": "Carlos",
        "password": password, "password_confirmation": password})


def _link(client, ticket, password=CARLOS["password"]):
    return client.post("/auth/convite/vincular", data={"csrf_token": _token(client), "ticket": ticket,
                                                       "password": password})


def _assert_invalid(response):
    assert response.status_code == 404
    assert INVALID in unescape(response.get_data(as_text=True))
    assert response.headers["Referrer-Policy"] == "no-referrer"


def _assert_wait(response):
    assert response.status_code == 503
    html = unescape(response.get_data(as_text=True))
    assert "Seu convite está quase pronto" in html and WAIT in html and INVALID not in html
    assert response.headers["Retry-After"] == "5"


# ---------------------------------------------------------------- the pages, state by state

@pytest.mark.parametrize("state", DEAD_STATES)
def test_a_dead_invitation_shows_the_invalid_page(browser_client, make_ticket, make_identity, state):
    ticket, _claims = make_ticket(email="nova@exemplo.com.br", state=state)
    _assert_invalid(_page(browser_client, ticket))
    make_identity(CARLOS)
    ticket, _claims = make_ticket(state=state)  # an e-mail with an account: no "já tem acesso" either
    _assert_invalid(_page(browser_client, ticket))


@pytest.mark.parametrize("state", DEAD_STATES)
def test_a_dead_invitation_registers_nothing(browser_client, make_ticket, auth_db, outbox_events, keyring, state):
    ticket, _claims = make_ticket(state=state)
    _assert_invalid(_register(browser_client, ticket))
    assert _identities(auth_db) == [] and outbox_events() == []
    assert session_claims(browser_client, keyring) is None


@pytest.mark.parametrize("state", DEAD_STATES)
def test_a_dead_invitation_links_nothing(browser_client, make_ticket, make_identity, outbox_events, keyring,
                                         state):
    make_identity(CARLOS)
    ticket, _claims = make_ticket(state=state)
    _assert_invalid(_link(browser_client, ticket))
    assert outbox_events("link.verified") == []
    assert session_claims(browser_client, keyring) is None


def test_the_state_is_read_when_the_form_is_posted(browser_client, make_ticket, make_identity, auth_db,
                                                   outbox_events):
    """The issue's case: the page was opened while pending; staff press Reenviar convite; the form
    posted afterwards creates no login and links nothing."""
    ticket, claims = make_ticket()
    assert _page(browser_client, ticket).status_code == 200
    set_invitation_state(auth_db, claims["inv"], "voided")
    _assert_invalid(_register(browser_client, ticket))
    assert _identities(auth_db) == []
    make_identity(CARLOS)
    _assert_invalid(_link(browser_client, ticket))
    assert outbox_events("link.verified") == []


# ---------------------------------------------------------------- not known yet

def test_an_unknown_invitation_asks_to_try_again_and_creates_nothing(browser_client, make_ticket, make_identity,
                                                                     auth_db, outbox_events):
    ticket, claims = make_ticket(state=None)
    page = _page(browser_client, ticket)
    _assert_wait(page)
    html = page.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="5">' in html
    assert 'href="/auth/convite?ticket=' in html
    _assert_wait(_register(browser_client, ticket))
    assert _identities(auth_db) == []
    make_identity(CARLOS)
    _assert_wait(_link(browser_client, ticket))
    assert outbox_events("link.verified") == []
    # invitation.created arrives: the same ticket now works
    set_invitation_state(auth_db, claims["inv"], "pending")
    assert "Vincular Contas" in _page(browser_client, ticket).get_data(as_text=True)
    assert location_path(_link(browser_client, ticket)) == f"/vinculando/{claims['inv']}"


# ---------------------------------------------------------------- the second-factor step of a link

def _enrol(config, clock):
    client, _apps = new_browser(config)
    login(client, email=CARLOS["email"], password=CARLOS["password"])
    mfa = "/auth/minha-conta/verificacao-em-duas-etapas"
    html = post_form(client, mfa, mfa + "/ativar", {"password": CARLOS["password"]}).get_data(as_text=True)
    import re
    secret = re.search(r'<code id="mfa-secret">([A-Z2-7]+)</code>', html).group(1)
    post_form(client, mfa, mfa + "/confirmar", {"code": pyotp.TOTP(secret).at(clock())})
    return secret


@pytest.mark.parametrize("state", DEAD_STATES)
def test_the_second_factor_step_of_a_link_refuses_a_dead_invitation(config, make_identity, make_ticket, auth_db,
                                                                   clock, outbox_events, keyring, state):
    make_identity(CARLOS)
    secret = _enrol(config, clock)
    clock.advance(seconds=30)
    ticket, claims = make_ticket()
    client, _apps = new_browser(config)
    assert location_path(_link(client, ticket)) == "/auth/verificacao"
    set_invitation_state(auth_db, claims["inv"], state)  # meanwhile: resent, used or expired
    html = client.get("/auth/verificacao").get_data(as_text=True)
    response = client.post("/auth/verificacao", data={"csrf_token": csrf_token(html),
                                                      "code": pyotp.TOTP(secret).at(clock())})
    _assert_invalid(response)
    assert outbox_events("link.verified") == []
    assert session_claims(client, keyring) is None
    # the pending step is gone: the code page sends to the login page
    assert location_path(client.get("/auth/verificacao")) == "/auth/entrar"


# ---------------------------------------------------------------- the projection

def _state(auth_db, invitation_id):
    with auth_db.begin() as s:
        return invites.invitation_status(s, invitation_id=invitation_id)


def _deliver(config, auth_db, event_type, payload):
    from services.auth import models
    envelope = make_envelope(event_type, payload, correlation_id="test")
    outcome, _info = handle_message(auth_db, models.processed, "auth", consumers.HANDLERS[event_type], envelope,
                                    config=config)
    assert outcome == Outcome.HANDLED


def _payloads(invitation_id, expires_at):
    import uuid
    ids = {"invitation_id": invitation_id, "firm_id": str(uuid.uuid4()), "client_user_id": str(uuid.uuid4())}
    return {
        "invitation.created": {**ids, "expires_at": expires_at.isoformat(), "resent": False, "sealed_link": None},
        "invitation.voided": {**ids, "reason": "superseded"},
        "invitation.accepted": {**ids, "identity_id": str(uuid.uuid4())},
    }


@pytest.mark.parametrize("order, expected", [
    (["invitation.created"], invites.USABLE),
    (["invitation.created", "invitation.voided"], invites.VOID),
    (["invitation.voided", "invitation.created"], invites.VOID),
    (["invitation.created", "invitation.accepted"], invites.USED),
    (["invitation.accepted", "invitation.created"], invites.USED),
    (["invitation.voided"], invites.VOID),
    (["invitation.created", "invitation.voided", "invitation.accepted", "invitation.created"], invites.VOID),
    (["invitation.accepted", "invitation.voided", "invitation.created"], invites.USED),
])
def test_the_projection_never_turns_a_dead_invitation_back_to_pending(config, auth_db, order, expected):
    import uuid

    from services.auth import clock as auth_clock
    invitation_id = str(uuid.uuid4())
    expires_at = auth_clock.now() + timedelta(days=7)
    payloads = _payloads(invitation_id, expires_at)
    for event_type in order:
        _deliver(config, auth_db, event_type, payloads[event_type])
    assert _state(auth_db, invitation_id) == expected
    with auth_db.begin() as s:
        row = s.get(InvitationState, uuid.UUID(invitation_id))
        if "invitation.created" in order:
            assert row.expires_at is not None
        if expected == invites.VOID:
            assert row.voided_reason == "superseded"


def test_expiry_is_decided_by_the_projection_not_by_the_ticket(config, auth_db, browser_client, make_ticket,
                                                               clock):
    ticket, claims = make_ticket(ttl=timedelta(hours=24))
    assert _page(browser_client, ticket).status_code == 200
    clock.advance(days=7, seconds=1)  # the invitation's expiry passed; the ticket's own has not
    _assert_invalid(_page(browser_client, ticket))
    _assert_invalid(_register(browser_client, ticket))
    assert _state(auth_db, claims["inv"]) == invites.EXPIRED


def test_unknown_invitations_are_unknown(config, auth_db):
    import uuid
    assert _state(auth_db, uuid.uuid4()) == invites.UNKNOWN


def test_handlers_match_the_catalogue():
    assert set(consumers.HANDLERS) == consumed_by("auth")
    assert {"invitation.created", "invitation.voided", "invitation.accepted"} <= set(consumers.HANDLERS)

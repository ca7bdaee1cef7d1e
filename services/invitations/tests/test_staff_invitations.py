"""Invitations to a firm's team (subject "staff_member") and how the invitation events evolved for
them without breaking a rolling deploy: `subject` is an optional field (minor 1) whose default is
what every older producer meant, a client user."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.common import events
from services.common.contracts import INVITATION_TICKET_AUDIENCE
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database
from services.invitations import consumers, models
from services.invitations.services import invitation_ticket, issue_invitation, void_invitations

from .test_invitations import ALFA, get_invitation, outbox_events


@pytest.fixture
def db(config):
    return database("invitations", config)


def _activated(subject_id, **extra) -> dict:
    return {"firm_id": str(ALFA["firm_id"]), "firm_name": ALFA["firm_name"], "firm_slug": ALFA["firm_slug"],
            "client_user_id": str(subject_id), "email": "paula@alfa.example", "name": "Paula Reis",
            "send_now": True, **extra}


def _handle(config, db, event_type, payload, *, version=None):
    envelope = events.make_envelope(event_type, payload, correlation_id="staff")
    if version is not None:
        envelope["version"] = version
    return handle_message(db, models.processed, "invitations", consumers.HANDLERS[event_type], envelope,
                          config=config)


def test_a_staff_members_invitation_names_its_subject_and_speaks_of_the_team(config, db):
    member_id = uuid.uuid4()
    outcome, _ = _handle(config, db, "client_user.access_activated", _activated(member_id, subject="staff_member"))
    assert outcome == Outcome.HANDLED
    [created] = outbox_events(db, "invitation.created")
    assert created["version"] == "1.1"  # the minor that added `subject`
    assert created["payload"]["subject"] == "staff_member" and created["payload"]["client_user_id"] == str(member_id)
    invitation = get_invitation(db, uuid.UUID(created["payload"]["invitation_id"]))
    assert (invitation.subject, invitation.subject_id) == ("staff_member", member_id)
    [request] = outbox_events(db, "notification.email_requested")
    assert request["payload"]["context"]["invitee"] == "staff"
    events.validate_email_context("invitation", request["payload"]["context"])
    # the ticket tells auth whose team it joins (the firm's staff MFA policy applies)
    keyring = KeyRing(config.keys_dir)
    claims = keyring.verify("invitations", invitation_ticket(keyring, invitation, via="email"),
                            audience=INVITATION_TICKET_AUDIENCE)
    assert claims["subject"] == "staff_member" and claims["firm_id"] == str(ALFA["firm_id"])


def test_an_older_producers_payload_is_a_client_users_invitation(config, db):
    """users deployed before staff invitations: version 1, no `subject` → a client user's."""
    cu_id = uuid.uuid4()
    outcome, _ = _handle(config, db, "client_user.access_activated", _activated(cu_id), version=1)
    assert outcome == Outcome.HANDLED
    [created] = outbox_events(db, "invitation.created")
    assert created["payload"]["subject"] == "client_user"
    [request] = outbox_events(db, "notification.email_requested")
    assert request["payload"]["context"]["invitee"] == "client"


def test_todays_consumers_read_the_new_minor(config, db):
    """The consumers deployed before `subject` (auth's projection of invitation.created, users'
    delivery status) drop the field they do not know: the 1.1 envelope parses with the major they read."""
    issue_invitation_payload = {"invitation_id": str(uuid.uuid4()), "firm_id": str(ALFA["firm_id"]),
                                "client_user_id": str(uuid.uuid4()), "expires_at": "2026-12-24T12:00:00+00:00",
                                "resent": False, "sealed_link": None, "subject": "staff_member"}
    envelope = events.make_envelope("invitation.created", issue_invitation_payload, correlation_id="c")
    assert envelope["version"] == "1.1"

    class TodaysInvitationCreated(events.Payload):  # the schema as it was before `subject`
        invitation_id = events.UUID()
        firm_id = events.UUID()
        client_user_id = events.UUID()
        expires_at = events.fields.AwareDateTime(required=True)
        resent = events.fields.Boolean(required=True)
        sealed_link = events.fields.String(load_default=None, allow_none=True)

    spec = events.CATALOGUE["invitation.created"]
    events.CATALOGUE["invitation.created"] = spec._replace(schema=TodaysInvitationCreated, minor=0)
    try:
        _, payload = events.parse_envelope(envelope)
    finally:
        events.CATALOGUE["invitation.created"] = spec
    assert "subject" not in payload and str(payload["client_user_id"]) == issue_invitation_payload["client_user_id"]


def test_voiding_is_per_subject(config, db):
    keyring, same_id = KeyRing(config.keys_dir), uuid.uuid4()
    with db.begin() as s:
        staff = issue_invitation(s, keyring=keyring, public_url=config.public_url, ttl=timedelta(days=7),
                                 subject="staff_member", subject_id=same_id, email="p@alfa.example", name="P R",
                                 resent=False, **ALFA)
        client = issue_invitation(s, keyring=keyring, public_url=config.public_url, ttl=timedelta(days=7),
                                  subject_id=same_id, email="c@alfa.example", name="C R", resent=False, **ALFA)
    outcome, _ = _handle(config, db, "client_user.access_revoked",
                         {"firm_id": str(ALFA["firm_id"]), "client_user_id": str(same_id), "reason": "deleted",
                          "subject": "staff_member"})
    assert outcome == Outcome.HANDLED
    assert get_invitation(db, staff.id).status == "voided" and get_invitation(db, client.id).status == "pending"
    [voided] = outbox_events(db, "invitation.voided")
    assert voided["payload"]["subject"] == "staff_member" and voided["payload"]["reason"] == "access_deleted"
    with pytest.raises(ValueError):
        with db.begin() as s:
            void_invitations(s, subject_id=same_id, subject="firm", reason="superseded")

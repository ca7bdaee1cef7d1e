"""The event catalogue: every message on the broker, its payload schema and who consumes it.

Event names are past tense. Payloads never carry a password, a password hash or a raw
token; a value only the notifier may read (an invitation or reset link) travels sealed
to the notifier's key (see `keys.seal`).
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, validate

EXCHANGE = "balcao.events"
DEAD_LETTER_EXCHANGE = "balcao.dead"
DEAD_LETTER_QUEUE = "balcao.dead_letters"


# E-mail templates the notifier renders (services/notifier/templates/emails/<name>.{txt,html}).
EMAIL_TEMPLATES = ["invitation", "invitation_code", "password_reset", "account_locked", "password_changed",
                   "mfa_changed", "firm_linked"]


class Payload(Schema):
    class Meta:
        unknown = RAISE


UUID = lambda **kw: fields.UUID(required=True, **kw)  # noqa: E731
Text = lambda **kw: fields.String(required=True, validate=validate.Length(min=1, max=500), **kw)  # noqa: E731
Email = lambda **kw: fields.Email(required=True, **kw)  # noqa: E731


class AccessActivated(Payload):
    firm_id = UUID()
    firm_name = Text()
    firm_slug = Text()
    client_user_id = UUID()
    email = Email()
    name = Text()
    send_now = fields.Boolean(required=True)


class InvitationRequested(Payload):
    firm_id = UUID()
    firm_name = Text()
    firm_slug = Text()
    client_user_id = UUID()
    email = Email()
    name = Text()


class AccessRevoked(Payload):
    firm_id = UUID()
    client_user_id = UUID()
    reason = fields.String(required=True, validate=validate.OneOf(["deactivated", "deleted"]))


class InvitationCreated(Payload):
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()
    expires_at = fields.AwareDateTime(required=True)
    resent = fields.Boolean(required=True)
    # {"link": ...} sealed to the users service, so staff can copy the link (never in clear). It is
    # the invitation's *copy* link, not the e-mailed one: opening it asks for a code sent to the
    # invitee's e-mail before the registration / "já tem acesso" page.
    sealed_link = fields.String(load_default=None, allow_none=True)


class InvitationVoided(Payload):
    """A pending invitation stopped working before it was used: a newer one replaced it (Reenviar
    convite), or the client user's access was deactivated or deleted."""
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()
    reason = fields.String(required=True, validate=validate.OneOf(
        ["superseded", "access_deactivated", "access_deleted"]))


class InvitationAccepted(Payload):
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()
    identity_id = UUID()


class InvitationAcceptanceRefused(Payload):
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()
    identity_id = UUID()
    reason = fields.String(required=True, validate=validate.OneOf(["not_pending", "expired", "email_mismatch"]))


class EmailRequested(Payload):
    template = fields.String(required=True, validate=validate.OneOf(EMAIL_TEMPLATES))
    recipient = Email()
    locale = fields.String(required=True, validate=validate.OneOf(["pt_BR", "en"]))
    context = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    sealed = fields.String(required=True)  # secret context (links), sealed to the notifier's key
    idempotency_key = Text()
    reference = fields.String(required=True)  # e.g. "invitation:<id>", echoed in sent/failed


class NotificationSent(Payload):
    idempotency_key = Text()
    reference = fields.String(required=True)
    message_id = Text()
    sent_at = fields.AwareDateTime(required=True)


class NotificationFailed(Payload):
    idempotency_key = Text()
    reference = fields.String(required=True)
    error = Text()
    failed_at = fields.AwareDateTime(required=True)
    permanent = fields.Boolean(required=True)


class IdentityRegistered(Payload):
    identity_id = UUID()
    email = Email()


class LinkVerified(Payload):
    invitation_id = UUID()
    identity_id = UUID()
    email = Email()  # the identity's normalized e-mail; invitations checks it equals the invitee's


class MembershipGranted(Payload):
    firm_id = UUID()
    firm_name = Text()
    identity_id = UUID()
    role = fields.String(required=True, validate=validate.OneOf(["client", "staff", "admin"]))


class MembershipRevoked(Payload):
    firm_id = UUID()
    identity_id = UUID()
    reason = fields.String(required=True, validate=validate.OneOf(["deactivated", "deleted", "left"]))


class SessionEnded(Payload):
    identity_id = UUID()
    # sha256 hex of each ended session id (the `sid` claim): services refuse those tokens at once
    session_hashes = fields.List(fields.String(validate=validate.Length(equal=64)), required=True)
    reason = fields.String(required=True, validate=validate.OneOf(
        ["logout", "ended_by_user", "password_changed", "password_reset", "not_me", "idle", "expired"]))


class IdentityLoggedIn(Payload):
    identity_id = UUID()
    ip = fields.String(required=True, validate=validate.Length(max=64))  # for the firms' audit logs
    at = fields.AwareDateTime(required=True)


class PasswordResetRequested(Payload):
    # the e-mail typed on Esqueci a senha, normalized, whether or not it has an account: auth's own
    # consumer looks it up, so the request costs the same for every e-mail (no enumeration by timing)
    email = Email()


class FirmMfaPolicyChanged(Payload):
    firm_id = UUID()
    require_staff_mfa = fields.Boolean(required=True)


# event type -> (version, payload schema, consuming services)
CATALOGUE: dict[str, tuple[int, type[Payload], tuple[str, ...]]] = {
    "client_user.access_activated": (1, AccessActivated, ("invitations",)),
    "client_user.invitation_requested": (1, InvitationRequested, ("invitations",)),
    "client_user.access_revoked": (1, AccessRevoked, ("invitations",)),
    # auth keeps a projection of each invitation's state (pending / voided / accepted, expiry): its
    # registration and Vincular Contas pages refuse a ticket whose invitation is no longer pending
    "invitation.created": (1, InvitationCreated, ("users", "auth")),
    "invitation.voided": (1, InvitationVoided, ("auth",)),
    "invitation.accepted": (1, InvitationAccepted, ("users", "auth")),
    "invitation.acceptance_refused": (1, InvitationAcceptanceRefused, ("users",)),
    "notification.email_requested": (1, EmailRequested, ("notifier",)),
    "notification.sent": (1, NotificationSent, ("users",)),
    "notification.failed": (1, NotificationFailed, ("users",)),
    "identity.registered": (1, IdentityRegistered, ()),
    "link.verified": (1, LinkVerified, ("invitations",)),
    "membership.granted": (1, MembershipGranted, ("auth",)),
    "membership.revoked": (1, MembershipRevoked, ("auth",)),
    "session.ended": (1, SessionEnded, ("users",)),
    "identity.logged_in": (1, IdentityLoggedIn, ("users",)),
    "firm.mfa_policy_changed": (1, FirmMfaPolicyChanged, ("auth",)),
    "password_reset.requested": (1, PasswordResetRequested, ("auth",)),
}


def consumed_by(service: str) -> set[str]:
    return {etype for etype, (_v, _s, consumers) in CATALOGUE.items() if service in consumers}


def queue_name(service: str, event_type: str) -> str:
    return f"{service}.{event_type}"


class Envelope(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.OneOf(list(CATALOGUE)))
    version = fields.Integer(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    payload = fields.Dict(required=True)


def validate_payload(event_type: str, payload: dict) -> dict:
    """Validate a payload against its schema; returns it JSON-ready (as it travels)."""
    if event_type not in CATALOGUE:
        raise ValidationError({"type": [f"unknown event type {event_type!r}"]})
    _version, schema_cls, _consumers = CATALOGUE[event_type]
    schema = schema_cls()
    return schema.dump(schema.load(payload if isinstance(payload, dict) else {}))


def make_envelope(event_type: str, payload: dict, *, correlation_id: str) -> dict:
    version = CATALOGUE[event_type][0]
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "version": version,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": correlation_id,
        "payload": validate_payload(event_type, payload),
    }


def parse_envelope(body) -> tuple[dict, dict]:
    """Validate a received message; returns (envelope, loaded payload). Raises ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["message body is not a JSON object"]})
    envelope = Envelope().load(body)
    _version, schema_cls, _consumers = CATALOGUE[envelope["type"]]
    if envelope["version"] != _version:
        raise ValidationError({"version": [f"unsupported version {envelope['version']}"]})
    payload = schema_cls().load(envelope["payload"])
    return envelope, payload

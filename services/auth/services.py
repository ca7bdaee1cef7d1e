"""Writes of the auth service: identities, passwords, link verification and password reset.

Plain functions `(session, *, ...)`; they never commit (the caller's `db().begin()` is the
transaction) and emit events through the outbox. No password, hash or raw token ever goes
into an event payload or a log line.
"""
from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from services.common.messaging import record_event

from .models import Identity, PasswordResetToken, outbox
from .queries import identity_by_email, normalize_email, reset_token_by_raw, token_hash

# OWASP password storage cheat sheet: argon2id, m=19 MiB, t=2, p=1.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# A hash of a random password nobody knows: verified against when the e-mail is unknown,
# so an unknown e-mail costs the same time as a wrong password.
_DUMMY_HASH = PASSWORD_HASHER.hash(secrets.token_urlsafe(24))

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
COMMON_PASSWORDS = frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])
RESET_TOKEN_TTL = timedelta(hours=1)


class PasswordPolicyError(ValueError):
    """The password (or its confirmation) is not acceptable.

    `.messages`: every pt-BR message; `.field_errors`: the same, by form field
    ("password", "password_confirmation").
    """

    def __init__(self, field_errors: dict[str, list[str]]):
        self.field_errors = {k: v for k, v in field_errors.items() if v}
        self.messages = [m for msgs in self.field_errors.values() for m in msgs]
        super().__init__("password policy")  # never the password itself


class EmailAlreadyRegistered(Exception):
    """There is already an identity with this e-mail."""


class InvalidResetToken(Exception):
    """The reset token is unknown, used or expired."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def password_problems(password: str, *, email: str) -> list[str]:
    """pt-BR messages for everything wrong with `password` (empty list: acceptable)."""
    problems = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(_("A senha deve ter pelo menos %(n)d caracteres.", n=PASSWORD_MIN_LENGTH))
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(_("A senha deve ter no máximo %(n)d caracteres.", n=PASSWORD_MAX_LENGTH))
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        problems.append(_("Esta senha é muito comum. Escolha outra."))
    normalized = normalize_email(email)
    if normalized and lowered in (normalized, normalized.split("@", 1)[0]):
        problems.append(_("A senha não pode ser igual ao seu e-mail."))
    return problems


def check_password_policy(password: str, *, email: str, confirmation: str | None = None) -> None:
    """Raise PasswordPolicyError unless the password is acceptable (and confirmed, when given)."""
    errors = {"password": password_problems(password, email=email), "password_confirmation": []}
    if confirmation is not None and confirmation != password:
        errors["password_confirmation"].append(_("As senhas não conferem."))
    if errors["password"] or errors["password_confirmation"]:
        raise PasswordPolicyError(errors)


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def _create_identity(session: Session, *, email: str, name: str, password: str,
                     confirmation: str | None) -> Identity:
    email = normalize_email(email)
    if identity_by_email(session, email) is not None:
        raise EmailAlreadyRegistered()
    check_password_policy(password, email=email, confirmation=confirmation)
    now = utcnow()
    identity = Identity(id=uuid.uuid4(), email=email, name=name.strip(), password_hash=hash_password(password),
                        created_at=now, password_changed_at=now)
    session.add(identity)
    try:
        session.flush()
    except IntegrityError:  # registered concurrently: the caller's transaction rolls back
        raise EmailAlreadyRegistered() from None
    record_event(session, outbox, "identity.registered", {"identity_id": str(identity.id), "email": email})
    return identity


def register_identity(session: Session, *, email: str, name: str, password: str) -> Identity:
    """Create an identity. Raises PasswordPolicyError or EmailAlreadyRegistered."""
    return _create_identity(session, email=email, name=name, password=password, confirmation=None)


def authenticate(session: Session, *, email: str, password: str) -> Identity | None:
    """The identity whose e-mail and password these are, or None (same cost either way)."""
    identity = identity_by_email(session, email)
    if identity is None:
        try:
            PASSWORD_HASHER.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    try:
        PASSWORD_HASHER.verify(identity.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if PASSWORD_HASHER.check_needs_rehash(identity.password_hash):
        identity.password_hash = hash_password(password)
    return identity


def _emit_link_verified(session: Session, *, ticket: dict, identity: Identity) -> None:
    record_event(session, outbox, "link.verified", {
        "invitation_id": str(ticket["inv"]), "identity_id": str(identity.id), "email": identity.email})


def verify_link_request(session: Session, *, ticket: dict, password: str) -> Identity | None:
    """Check the password of the identity the invitation was addressed to; only then emit
    `link.verified`. Wrong password (or no such identity): None, nothing emitted."""
    identity = authenticate(session, email=ticket["email"], password=password)
    if identity is None:
        return None
    _emit_link_verified(session, ticket=ticket, identity=identity)
    return identity


def register_from_invitation(session: Session, *, ticket: dict, name: str, password: str,
                             password_confirmation: str) -> Identity:
    """Create the identity for the invited e-mail and emit `identity.registered` + `link.verified`.

    Raises EmailAlreadyRegistered (the e-mail already has an identity: link instead) or
    PasswordPolicyError.
    """
    identity = _create_identity(session, email=ticket["email"], name=name, password=password,
                                confirmation=password_confirmation)
    _emit_link_verified(session, ticket=ticket, identity=identity)
    return identity


def request_password_reset(session: Session, *, email: str, keyring, public_url: str) -> None:
    """For a known e-mail, replace any pending reset token by a new one and ask the notifier to
    e-mail the (sealed) link. For an unknown e-mail do nothing."""
    identity = identity_by_email(session, email)
    if identity is None:
        return
    now = utcnow()
    session.execute(update(PasswordResetToken)
                    .where(PasswordResetToken.identity_id == identity.id, PasswordResetToken.used_at.is_(None))
                    .values(used_at=now))
    raw_token = secrets.token_urlsafe(32)
    row = PasswordResetToken(id=uuid.uuid4(), identity_id=identity.id, token_hash=token_hash(raw_token),
                             created_at=now, expires_at=now + RESET_TOKEN_TTL, used_at=None)
    session.add(row)
    session.flush()
    record_event(session, outbox, "notification.email_requested", {
        "template": "password_reset",
        "recipient": identity.email,
        "locale": "pt_BR",
        "context": {"name": identity.name},
        "sealed": keyring.seal({"link": f"{public_url.rstrip('/')}/auth/redefinir-senha/{raw_token}"}),
        "idempotency_key": f"password_reset:{row.id}",
        "reference": f"password_reset:{row.id}",
    })


def reset_password(session: Session, *, raw_token: str, password: str, password_confirmation: str) -> Identity:
    """Set a new password with a reset token: single use, expiring.

    Raises InvalidResetToken or PasswordPolicyError (the token then stays usable).
    """
    row = reset_token_by_raw(session, raw_token)
    if row is None:
        raise InvalidResetToken()
    identity = session.get(Identity, row.identity_id)
    if identity is None:
        raise InvalidResetToken()
    check_password_policy(password, email=identity.email, confirmation=password_confirmation)
    now = utcnow()
    consumed = session.execute(update(PasswordResetToken)
                               .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
                               .values(used_at=now)
                               .execution_options(synchronize_session=False))
    if consumed.rowcount != 1:  # used concurrently
        raise InvalidResetToken()
    # Any other pending token of this identity dies with this one.
    session.execute(update(PasswordResetToken)
                    .where(PasswordResetToken.identity_id == identity.id, PasswordResetToken.used_at.is_(None))
                    .values(used_at=now)
                    .execution_options(synchronize_session=False))
    identity.password_hash = hash_password(password)
    identity.password_changed_at = now
    return identity

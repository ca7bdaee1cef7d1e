"""Writes of the auth service: identities, passwords, link verification and password reset.

Plain functions `(session, *, ...)`; they never commit (the caller's `db().begin()` is the
transaction) and emit events through the outbox. No password, hash or raw token ever goes
into an event payload or a log line.
"""
from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _
from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.contracts import normalize_email, session_hash
from services.common.db import affected_rows
from services.common.messaging import record_event

from . import clock, common_passwords
from .models import (
    AuthSession,
    FirmMfaPolicy,
    Identity,
    PasswordResetToken,
    RecoveryCode,
    StaffMembership,
    outbox,
)
from .queries import identity_by_email, reset_token_by_raw, token_hash

# OWASP password storage cheat sheet: argon2id, m=19 MiB, t=2, p=1.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# A hash of a random password nobody knows: verified against when the e-mail is unknown,
# so an unknown e-mail costs the same time as a wrong password.
_DUMMY_HASH = PASSWORD_HASHER.hash(secrets.token_urlsafe(24))

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# zxcvbn's 30 000 common passwords, without keeping the rest of zxcvbn resident.
COMMON_PASSWORDS = common_passwords.load()
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
    return clock.now()


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
    return add_identity(session, email=email, name=name.strip(), password_hash=hash_password(password), now=utcnow())


def add_identity(session: Session, *, email: str, name: str, password_hash: str, now: datetime) -> Identity:
    """The login row for a normalized e-mail and an argon2 hash, announced as `identity.registered`
    (registration from an invitation, a confirmed firm sign-up)."""
    identity = Identity(id=uuid.uuid4(), email=email, name=name, password_hash=password_hash,
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
    if not password_matches(identity, password):
        return None
    rehash_if_needed(session, identity=identity, password=password)
    return identity


def password_matches(identity: Identity, password: str) -> bool:
    """Is `password` the identity's (argon2id verify against its stored hash)?"""
    try:
        PASSWORD_HASHER.verify(identity.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return True


def needs_rehash(identity: Identity) -> bool:
    """Was the identity's hash made with other parameters than PASSWORD_HASHER's?"""
    return PASSWORD_HASHER.check_needs_rehash(identity.password_hash)


def rehash_if_needed(session: Session, *, identity: Identity, password: str) -> None:
    """After a right `password`: store its hash with the current parameters, when they changed. The
    identity may have been read in another session (a request's read session): then an UPDATE."""
    if not needs_rehash(identity):
        return
    new_hash = hash_password(password)
    if identity in session:
        identity.password_hash = new_hash
        return
    session.execute(update(Identity).where(Identity.id == identity.id).values(password_hash=new_hash)
                    .execution_options(synchronize_session=False))


def emit_link_verified(session: Session, *, ticket: dict, identity: Identity) -> None:
    """Emit `link.verified` for an identity whose password (and second factor) were checked."""
    _emit_link_verified(session, ticket=ticket, identity=identity)


def _emit_link_verified(session: Session, *, ticket: dict, identity: Identity) -> None:
    record_event(session, outbox, "link.verified", {
        "invitation_id": str(ticket["inv"]), "identity_id": str(identity.id), "email": identity.email})


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


def record_password_reset_request(session: Session, *, email: str) -> None:
    """Esqueci a senha: record `password_reset.requested` for the e-mail, known or not. The same
    single INSERT for every e-mail, so the request's time tells nothing; auth's own consumer does
    the lookup, the token and the e-mail (`request_password_reset`)."""
    record_event(session, outbox, "password_reset.requested", {"email": normalize_email(email)})


def request_password_reset(session: Session, *, email: str, keyring, public_url: str) -> None:
    """For a known e-mail, replace any pending reset token by a new one and ask the notifier to
    e-mail the (sealed) link. For an unknown e-mail do nothing. Runs off the request (the
    `password_reset.requested` consumer), or for a person already signed in (Não fui eu)."""
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


def reset_password(session: Session, *, raw_token: str, password: str, password_confirmation: str,
                   keyring=None, public_url: str = "") -> Identity:
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
    if affected_rows(consumed) != 1:  # used concurrently
        raise InvalidResetToken()
    # Any other pending token of this identity dies with this one.
    session.execute(update(PasswordResetToken)
                    .where(PasswordResetToken.identity_id == identity.id, PasswordResetToken.used_at.is_(None))
                    .values(used_at=now)
                    .execution_options(synchronize_session=False))
    identity.password_hash = hash_password(password)
    identity.password_changed_at = now
    # A reset ends every session (the MFA secret stays: the next login still asks for the code).
    end_sessions(session, identity_id=identity.id, reason="password_reset")
    if keyring is not None:
        _notice(session, identity, "password_changed", {"name": identity.name, "changed_at": _iso(now)},
                keyring=keyring, public_url=public_url, key=f"password_changed:{row.id}")
    return identity


# --------------------------------------------------------------------------- notices

def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _notice(session: Session, identity: Identity, template: str, context: dict, *, keyring, public_url: str,
            key: str, link: str | None = None) -> None:
    """Ask the notifier for a security e-mail to the identity; the link travels sealed."""
    link = link or f"{public_url.rstrip('/')}/auth/esqueci-senha"
    record_event(session, outbox, "notification.email_requested", {
        "template": template,
        "recipient": identity.email,
        "locale": "pt_BR",
        "context": context,
        "sealed": keyring.seal({"link": link}),
        "idempotency_key": key,
        "reference": f"{template}:{identity.id}",
    })


def notify_account_locked(session: Session, *, email: str, locked_until: datetime, keyring,
                          public_url: str, everyone: bool = True) -> bool:
    """E-mail the owner of `email` (if any) that the account is locked: for every device
    (`everyone`), or only for the device/address the wrong passwords came from. True when sent."""
    identity = identity_by_email(session, email)
    if identity is None:
        return False
    _notice(session, identity, "account_locked", {"name": identity.name, "locked_until": _iso(locked_until),
                                                  "scope": "account" if everyone else "client"},
            keyring=keyring, public_url=public_url, key=f"account_locked:{identity.id}:{int(locked_until.timestamp())}")
    return True


def notify_firm_linked(session: Session, *, identity_id, firm_id, firm_name: str, linked_at: datetime, keyring,
                       public_url: str) -> bool:
    """"Sua conta foi vinculada a …" with a link to report it was not them. False: unknown identity."""
    identity = session.get(Identity, uuid.UUID(str(identity_id)))
    if identity is None:
        return False
    _notice(session, identity, "firm_linked",
            {"name": identity.name, "firm_name": firm_name, "linked_at": _iso(linked_at)},
            keyring=keyring, public_url=public_url,
            key=f"firm_linked:{identity.id}:{firm_id}:{int(linked_at.timestamp())}",
            link=f"{public_url.rstrip('/')}/auth/minha-conta/nao-fui-eu")
    return True


# --------------------------------------------------------------------------- sessions

class WrongPassword(Exception):
    """The current password given to confirm a sensitive change is not the right one."""


# A Core INSERT built once (no ORM unit of work, no statement built per login): nothing in the
# request reads the row back.
_INSERT_SESSION = insert(cast(Table, AuthSession.__table__))


def start_session(session: Session, *, identity_id, user_agent: str, ip: str, idle_minutes: int,
                  absolute_hours: int) -> str:
    """A new session (new random sid) for the identity; its sid."""
    now = utcnow()
    sid = secrets.token_urlsafe(24)
    session.execute(_INSERT_SESSION, {
        "sid": sid, "identity_id": identity_id, "created_at": now, "last_seen_at": now,
        "expires_at": now + timedelta(hours=absolute_hours), "idle_timeout_minutes": idle_minutes,
        "user_agent": (user_agent or "")[:500], "ip": (ip or "")[:64]})
    return sid


def touch_session(session: Session, *, sid: str | None, identity_id) -> AuthSession | None:
    """The live session `sid` of the identity, its last_seen_at now; None when it is not live
    (a session found idle or expired is ended with that reason)."""
    from .queries import session_is_live
    if not sid:
        return None
    row = session.get(AuthSession, sid, with_for_update=session.get_bind().dialect.name != "sqlite")
    if row is None or str(row.identity_id) != str(identity_id) or row.ended_at is not None:
        return None
    now = utcnow()
    if not session_is_live(row, now):
        row.ended_at = now
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
        row.ended_reason = "expired" if expires <= now else "idle"
        _emit_session_ended(session, identity_id=row.identity_id, sids=[row.sid], reason=row.ended_reason)
        return None
    row.last_seen_at = now
    return row


def end_sessions(session: Session, *, identity_id, reason: str, sids: list[str] | None = None,
                 except_sid: str | None = None) -> list[str]:
    """End the identity's open sessions (only `sids` when given; never `except_sid`).
    Returns the ended sids. The proposed `session.ended` event would carry them."""
    stmt = select(AuthSession.sid).where(AuthSession.identity_id == identity_id, AuthSession.ended_at.is_(None))
    if sids is not None:
        stmt = stmt.where(AuthSession.sid.in_(sids))
    if except_sid:
        stmt = stmt.where(AuthSession.sid != except_sid)
    ended = list(session.scalars(stmt).all())
    if ended:
        session.execute(update(AuthSession).where(AuthSession.sid.in_(ended))
                        .values(ended_at=utcnow(), ended_reason=reason)
                        .execution_options(synchronize_session=False))
        _emit_session_ended(session, identity_id=identity_id, sids=ended, reason=reason)
    return ended



def _emit_session_ended(session: Session, *, identity_id, sids: list[str], reason: str) -> None:
    record_event(session, outbox, "session.ended", {
        "identity_id": str(identity_id), "session_hashes": [session_hash(sid) for sid in sids], "reason": reason})


def record_login(session: Session, *, identity_id, ip: str) -> None:
    """A successful login (password, and second factor when there is one): `identity.logged_in`
    for the firms' audit logs."""
    record_event(session, outbox, "identity.logged_in", {
        "identity_id": str(identity_id), "ip": (ip or "")[:64], "at": _iso(utcnow())})


def _check_current_password(identity: Identity, password: str) -> None:
    try:
        PASSWORD_HASHER.verify(identity.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise WrongPassword() from None


def change_password(session: Session, *, identity_id, current_password: str, password: str,
                    password_confirmation: str, keyring, public_url: str) -> Identity:
    """Change the password (the current one required) and end EVERY session of the identity:
    the caller starts a new one for this browser. Raises WrongPassword or PasswordPolicyError."""
    identity = session.get_one(Identity, identity_id)
    _check_current_password(identity, current_password)
    check_password_policy(password, email=identity.email, confirmation=password_confirmation)
    now = utcnow()
    identity.password_hash = hash_password(password)
    identity.password_changed_at = now
    end_sessions(session, identity_id=identity.id, reason="password_changed")
    _notice(session, identity, "password_changed", {"name": identity.name, "changed_at": _iso(now)},
            keyring=keyring, public_url=public_url, key=f"password_changed:{identity.id}:{int(now.timestamp())}")
    return identity


# --------------------------------------------------------------------------- second factor (TOTP)

RECOVERY_CODES = 10
MFA_ISSUER = "Balcão"


class InvalidCode(Exception):
    """The verification code is wrong, expired or already used."""


def _normalize_code(code: str) -> str:
    return "".join(ch for ch in (code or "") if ch.isalnum()).lower()


def begin_mfa_enrollment(session: Session, *, identity_id, password: str) -> str:
    """After re-entering the password: a new pending TOTP secret (base32). Raises WrongPassword."""
    import pyotp
    identity = session.get_one(Identity, identity_id)
    _check_current_password(identity, password)
    identity.mfa_pending_secret = pyotp.random_base32()
    return identity.mfa_pending_secret


def begin_required_mfa_enrollment(session: Session, *, identity_id) -> str:
    """A new pending TOTP secret for an identity whose password was JUST verified at login (the
    firm requires MFA of its staff): no second password prompt. Returns the base32 secret."""
    import pyotp
    identity = session.get_one(Identity, identity_id)
    identity.mfa_pending_secret = pyotp.random_base32()
    return identity.mfa_pending_secret


def mfa_provisioning_uri(identity: Identity) -> str:
    import pyotp
    if not identity.mfa_pending_secret:
        raise InvalidCode()  # no enrolment under way
    return pyotp.TOTP(identity.mfa_pending_secret).provisioning_uri(name=identity.email, issuer_name=MFA_ISSUER)


def _totp_step(secret: str, code: str) -> int | None:
    """The time step `code` belongs to (current ±1), or None."""
    import pyotp
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = utcnow()
    for drift in (0, -1, 1):
        at = now + timedelta(seconds=30 * drift)
        if secrets.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None


def confirm_mfa_enrollment(session: Session, *, identity_id, code: str, keyring, public_url: str) -> list[str]:
    """Enable TOTP with a first code from the app; returns the 10 recovery codes (shown once)."""
    identity = session.get_one(Identity, identity_id)
    if not identity.mfa_pending_secret:
        raise InvalidCode()
    step = _totp_step(identity.mfa_pending_secret, _normalize_code(code))
    if step is None:
        raise InvalidCode()
    identity.mfa_secret, identity.mfa_pending_secret = identity.mfa_pending_secret, None
    identity.mfa_enabled_at, identity.mfa_last_step = utcnow(), step
    codes = _new_recovery_codes(session, identity)
    _notice(session, identity, "mfa_changed", {"name": identity.name, "change": "enabled"},
            keyring=keyring, public_url=public_url, key=f"mfa_changed:{identity.id}:enabled:{step}")
    return codes


# Recovery codes: 12 base32 characters (60 bits), shown as xxxx-xxxx-xxxx, stored hashed with
# argon2id (PASSWORD_HASHER). Codes issued before were 10 hex characters (xxxxx-xxxxx) stored as
# unsalted SHA-256: those rows (a code_hash not starting with "$argon2") keep working until used.
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
RECOVERY_CODE_LENGTH = 12
_LEGACY_RECOVERY_CODE_LENGTH = 10


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _i in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def _new_recovery_codes(session: Session, identity: Identity) -> list[str]:
    from sqlalchemy import delete
    session.execute(delete(RecoveryCode).where(RecoveryCode.identity_id == identity.id))
    codes = []
    for _i in range(RECOVERY_CODES):
        code = _new_recovery_code()
        codes.append(code)
        session.add(RecoveryCode(id=uuid.uuid4(), identity_id=identity.id,
                                 code_hash=PASSWORD_HASHER.hash(_normalize_code(code))))
    return codes


def _recovery_code_matches(code_hash: str, normalized: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(code_hash, normalized)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _use_recovery_code(session: Session, identity: Identity, normalized: str) -> bool:
    """Mark the identity's unused recovery code `normalized` used; False when there is none.
    At most RECOVERY_CODES argon2 verifies, and none unless the value has a recovery code's form."""
    now = utcnow()
    if len(normalized) == _LEGACY_RECOVERY_CODE_LENGTH and all(ch in "0123456789abcdef" for ch in normalized):
        # a code issued before argon2: its row holds the SHA-256 of the 10 hex characters
        used = session.execute(update(RecoveryCode)
                               .where(RecoveryCode.identity_id == identity.id, RecoveryCode.used_at.is_(None),
                                      RecoveryCode.code_hash == token_hash(normalized))
                               .values(used_at=now).execution_options(synchronize_session=False))
        return affected_rows(used) == 1
    if len(normalized) != RECOVERY_CODE_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in normalized):
        return False
    unused = session.execute(select(RecoveryCode.id, RecoveryCode.code_hash)
                             .where(RecoveryCode.identity_id == identity.id, RecoveryCode.used_at.is_(None),
                                    RecoveryCode.code_hash.startswith("$argon2"))
                             .limit(RECOVERY_CODES)).all()
    match = next((row.id for row in unused if _recovery_code_matches(row.code_hash, normalized)), None)
    if match is None:
        return False
    used = session.execute(update(RecoveryCode)
                           .where(RecoveryCode.id == match, RecoveryCode.used_at.is_(None))
                           .values(used_at=now).execution_options(synchronize_session=False))
    return affected_rows(used) == 1


def disable_mfa(session: Session, *, identity_id, password: str, keyring, public_url: str) -> None:
    """Remove TOTP and the recovery codes, after re-entering the password. Raises WrongPassword."""
    from sqlalchemy import delete
    identity = session.get_one(Identity, identity_id)
    _check_current_password(identity, password)
    identity.mfa_secret = identity.mfa_pending_secret = None
    identity.mfa_enabled_at = identity.mfa_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.identity_id == identity.id))
    now = utcnow()
    _notice(session, identity, "mfa_changed", {"name": identity.name, "change": "disabled"},
            keyring=keyring, public_url=public_url, key=f"mfa_changed:{identity.id}:disabled:{int(now.timestamp())}")


def verify_second_factor(session: Session, *, identity_id, code: str) -> bool:
    """A TOTP code (never the same time step twice) or an unused recovery code (then used up)."""
    identity = session.get(Identity, identity_id, with_for_update=session.get_bind().dialect.name != "sqlite")
    if identity is None or not identity.mfa_secret:
        return False
    normalized = _normalize_code(code)
    step = _totp_step(identity.mfa_secret, normalized)
    if step is not None:
        if identity.mfa_last_step is not None and step <= identity.mfa_last_step:
            return False
        identity.mfa_last_step = step
        return True
    return _use_recovery_code(session, identity, normalized)


def _parse_time(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- staff MFA policy (projection)

STAFF_ROLES = ("staff", "admin")


def project_membership_granted(session: Session, *, identity_id, firm_id, role: str) -> None:
    """Remember that the identity works at the firm (staff/admin); client memberships are not kept."""
    if role not in STAFF_ROLES:
        return
    key = (uuid.UUID(str(identity_id)), uuid.UUID(str(firm_id)))
    if session.get(StaffMembership, key) is None:
        session.add(StaffMembership(identity_id=key[0], firm_id=key[1]))
        session.flush()


def project_membership_revoked(session: Session, *, identity_id, firm_id) -> None:
    row = session.get(StaffMembership, (uuid.UUID(str(identity_id)), uuid.UUID(str(firm_id))))
    if row is not None:
        session.delete(row)
        session.flush()


def set_firm_mfa_policy(session: Session, *, firm_id, require_staff_mfa: bool) -> None:
    """The firm's "exigir verificação em duas etapas" setting for its staff."""
    firm_id = uuid.UUID(str(firm_id))
    row = session.get(FirmMfaPolicy, firm_id)
    if row is None:
        session.add(FirmMfaPolicy(firm_id=firm_id, require_staff_mfa=bool(require_staff_mfa)))
    else:
        row.require_staff_mfa = bool(require_staff_mfa)
    session.flush()

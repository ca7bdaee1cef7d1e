"""Self-service sign-up of a firm (Cadastre seu escritório), auth's part: the pending sign-up, its
confirmation e-mail, and the confirmation that creates or checks the login and tells users to
create the firm (`firm_signup.confirmed`).

Why auth: the form carries a password, and passwords live only here. The firm exists only once the
e-mail is confirmed by the link, and only the users service creates it.

No user enumeration: submitting the form never looks at the identities. It stores the sign-up (the
password already hashed) and asks for the e-mail, with the same work and the same answer whether or
not the e-mail has a login. Only the link's holder — the mailbox's owner — learns, on the
confirmation page, that the e-mail already has a login.

An e-mail that already has a login keeps its password: the password typed on the form is dropped
(never compared, never set), and the confirmation asks for the login's own password (and second
factor) under the same lock policy as the login and Vincular Contas. Whoever signs up with somebody
else's e-mail therefore gets nothing: the link goes to that person, and the firm is created only
with the login's real password. A new e-mail gets its login at the confirmation, with the password
chosen on the form (its argon2id hash, kept until then).

Plain functions `(session, *, ...)`; they never commit.
"""
from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.common.contracts import normalize_email
from services.common.db import affected_rows
from services.common.documents import format_cnpj
from services.common.messaging import record_event

from . import clock
from .models import FirmSignup, Identity, outbox
from .queries import identity_by_email, token_hash
from .services import EmailAlreadyRegistered, add_identity, check_password_policy, hash_password

SIGNUP_TTL = timedelta(hours=24)  # the e-mail (notifier template firm_signup) says so


class InvalidSignup(Exception):
    """The sign-up link is unknown, already used or expired."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def request_firm_signup(session: Session, *, legal_name: str, cnpj: str, admin_name: str, email: str,
                        password: str, password_confirmation: str, keyring, public_url: str) -> FirmSignup:
    """Store a sign-up waiting for its e-mail and ask the notifier for the confirmation e-mail (the
    link sealed to it). `cnpj` is already clean (services.common.documents.clean_cnpj). The same work
    whatever the e-mail: no identity is looked at. Raises services.PasswordPolicyError."""
    email = normalize_email(email)
    check_password_policy(password, email=email, confirmation=password_confirmation)
    now = clock.now()
    session.execute(delete(FirmSignup).where(FirmSignup.expires_at < now))  # sweep: used or not, gone
    raw_token = secrets.token_urlsafe(32)
    row = FirmSignup(id=uuid.uuid4(), token_hash=token_hash(raw_token), email=email,
                     admin_name=" ".join(admin_name.split()), legal_name=" ".join(legal_name.split()), cnpj=cnpj,
                     password_hash=hash_password(password), created_at=now, expires_at=now + SIGNUP_TTL)
    session.add(row)
    session.flush()
    record_event(session, outbox, "notification.email_requested", {
        "template": "firm_signup",
        "recipient": email,
        "locale": "pt_BR",
        "context": {"name": "", "cnpj": format_cnpj(cnpj),
                    "expires_in_hours": str(int(SIGNUP_TTL.total_seconds() // 3600))},
        "sealed": keyring.seal({"link": f"{public_url.rstrip('/')}/auth/cadastro-de-escritorio/confirmar/{raw_token}"}),
        "idempotency_key": f"firm_signup:{row.id}",
        "reference": f"firm_signup:{row.id}",
    })
    return row


def live_signup(session: Session, *, raw_token: str | None = None, signup_id=None,
                for_update: bool = False) -> FirmSignup | None:
    """The sign-up of this raw token (or id) while it is unused and unexpired, else None."""
    if raw_token is not None:
        if not raw_token or len(raw_token) > 200:
            return None
        stmt = select(FirmSignup).where(FirmSignup.token_hash == token_hash(raw_token))
    else:
        try:
            stmt = select(FirmSignup).where(FirmSignup.id == uuid.UUID(str(signup_id)))
        except ValueError:
            return None
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None or row.used_at is not None or _aware(row.expires_at) <= clock.now():
        return None
    return row


def _confirm(session: Session, row: FirmSignup, identity: Identity, *, ip: str) -> None:
    """Use the sign-up (once: a concurrent confirmation loses) and tell users to create the firm."""
    used = session.execute(update(FirmSignup)
                           .where(FirmSignup.id == row.id, FirmSignup.used_at.is_(None))
                           .values(used_at=clock.now(), password_hash="", identity_id=identity.id)
                           .execution_options(synchronize_session=False))
    if affected_rows(used) != 1:
        raise InvalidSignup()
    record_event(session, outbox, "firm_signup.confirmed", {
        "signup_id": str(row.id), "identity_id": str(identity.id), "email": identity.email,
        "admin_name": row.admin_name, "legal_name": row.legal_name, "cnpj": row.cnpj, "ip": (ip or "")[:64]})


def confirm_with_new_login(session: Session, *, raw_token: str, ip: str) -> tuple[Identity, FirmSignup]:
    """The e-mail has no login: create it with the sign-up's password (already hashed), then confirm.
    Raises InvalidSignup, or EmailAlreadyRegistered (a login appeared meanwhile: confirm with it)."""
    row = live_signup(session, raw_token=raw_token, for_update=True)
    if row is None:
        raise InvalidSignup()
    if identity_by_email(session, row.email) is not None:
        raise EmailAlreadyRegistered()
    identity = add_identity(session, email=row.email, name=row.admin_name, password_hash=row.password_hash,
                            now=clock.now())
    _confirm(session, row, identity, ip=ip)
    return identity, row


def confirm_with_existing_login(session: Session, *, signup_id, identity_id, ip: str) -> FirmSignup:
    """The e-mail's own login, whose password (and second factor, if any) the caller has just
    checked, confirms the sign-up; its password is left as it is. Raises InvalidSignup."""
    row = live_signup(session, signup_id=signup_id, for_update=True)
    identity = session.get(Identity, uuid.UUID(str(identity_id)))
    if row is None or identity is None or identity.email != row.email:
        raise InvalidSignup()
    _confirm(session, row, identity, ip=ip)
    return row

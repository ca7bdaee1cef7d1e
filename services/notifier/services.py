"""Writes of the notifier service: render, claim an attempt, send (or keep in the dev mailbox),
record the outcome. Like every service function they never commit: the callers in
consumers.py (the `notification.email_requested` handler and the retry job) own the
transactions.

Delivery states: "queued" → "sent" | "retrying" → ... → "sent" | "failed". The caller commits
every attempt (attempts + 1, a lease in `next_attempt_at`: `claim_first_attempt`,
`claim_due_attempt`) in a short transaction of its own BEFORE SMTP is contacted — no
transaction spans SMTP — so a crash mid-send is visible and the next attempt reuses the same
Message-ID; the outcome (`record_outcome`: status + `notification.sent` /
`notification.failed`) commits with the caller's next transaction (the consumer's own, for a
first attempt).

Never logged: the link, the sealed value, the bodies."""
from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import formatdate, make_msgid, parseaddr
from functools import cache
from typing import Any, NoReturn, cast
from urllib.parse import parse_qs, unquote, urlsplit

from marshmallow import EXCLUDE
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from services.common.events import EMAIL_CONTEXTS, EMAIL_SEALED, EmailRequested
from services.common.messaging import record_event, utcnow

from . import queries
from .models import Delivery, FirmLogo, FirmProfile, outbox
from .rendering import InlineImage, build_message, from_shown, international, logo_cid, message_bytes, render_email

log = logging.getLogger("balcao.notifier")

SMTP_TIMEOUT = 10
# How long an attempt owns its delivery: past it, an attempt that never reported back (the
# process died mid-send) is due again. Comfortably above one SMTP conversation.
SEND_LEASE_SECONDS = 60
MAX_BACKOFF_SECONDS = 3600


class PermanentDeliveryError(Exception):
    """The SMTP server refused the message for good (5xx): retrying will not help."""


class TemporaryDeliveryError(Exception):
    """The SMTP server could not be reached or answered 4xx: the consumer retries with backoff."""


def _connect(smtp_url: str) -> smtplib.SMTP:
    """An SMTP client connected to `smtp://[user:password@]host[:port][?starttls=1]` or
    `smtps://...`, TLS and login done. Raises what smtplib/ssl raise (see `_delivery_error`)."""
    url = urlsplit(smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise PermanentDeliveryError(f"invalid SMTP URL scheme {url.scheme!r}")
    starttls = parse_qs(url.query).get("starttls", ["0"])[0].lower() in ("1", "true", "yes", "on")
    client: smtplib.SMTP
    if url.scheme == "smtps":
        client = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=SMTP_TIMEOUT,
                                  context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(url.hostname, url.port or (587 if starttls else 25), timeout=SMTP_TIMEOUT)
    try:
        if starttls:
            client.starttls(context=ssl.create_default_context())
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: smtplib.SMTP) -> None:
    """QUIT politely when the connection still answers; close the socket in any case."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


def _transfer(client: smtplib.SMTP, message: Message, data: bytes | None, envelope_from: str | None,
              recipients: list[str] | None = None) -> None:
    if data is None:
        client.send_message(message, from_addr=envelope_from)
    else:
        client.sendmail(envelope_from or parseaddr(str(message["From"]))[1], recipients or [str(message["To"])], data)


def _delivery_error(exc: BaseException) -> PermanentDeliveryError | TemporaryDeliveryError | None:
    """What an smtplib/socket error means for the delivery (None: not an SMTP error)."""
    if isinstance(exc, PermanentDeliveryError | TemporaryDeliveryError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        error = "; ".join(f"{code} {_text(msg)}" for code, msg in exc.recipients.values())
        if all(code >= 500 for code in codes):
            return PermanentDeliveryError(f"recipient refused: {error}")
        return TemporaryDeliveryError(f"recipient deferred: {error}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # The relay refused OUR credentials (535 …): the operator's configuration, not this message's
        # fault — retried with backoff (until BALCAO_SMTP_MAX_ATTEMPTS) rather than failed for good.
        return TemporaryDeliveryError(f"authentication failed ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPResponseException):
        error = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if exc.smtp_code >= 500:
            return PermanentDeliveryError(error)
        return TemporaryDeliveryError(error)
    if isinstance(exc, smtplib.SMTPException | OSError):  # refused, timed out, disconnected, TLS
        return TemporaryDeliveryError(f"{type(exc).__name__}: {exc}"[:500])
    return None


def _raise_as_delivery_error(exc: Exception) -> NoReturn:
    """Raise `exc` as the PermanentDeliveryError / TemporaryDeliveryError it means (itself when it
    is one already, or when it is not an SMTP error at all)."""
    error = _delivery_error(exc)
    if error is None or error is exc:
        raise exc
    raise error from exc


def send_smtp(smtp_url: str, message: Message, *, data: bytes | None = None,
              envelope_from: str | None = None) -> None:
    """Send one message over a connection of its own to `smtp_url` (see `_connect`); `data` (the
    exact bytes, e.g. DKIM-signed) replaces the serialisation of `message`.

    Raises PermanentDeliveryError or TemporaryDeliveryError. The error text never carries
    the SMTP URL's credentials."""
    try:
        client = _connect(smtp_url)
        try:
            _transfer(client, message, data, envelope_from)
        finally:
            _close(client)
    except Exception as exc:
        _raise_as_delivery_error(exc)


class SmtpConnection:
    """One SMTP connection kept open across e-mails (a notifier worker thread's: `send` keeps one
    per thread), so that an e-mail costs its MAIL/RCPT/DATA exchange, not a TCP connect, EHLO,
    STARTTLS and login each.

    A connection idle for more than `idle_check` seconds is checked with NOOP before it is used;
    one that does not answer is replaced by a new one before anything is sent (nothing of the
    e-mail went out on it). Any failure during a send closes the connection (the next e-mail opens
    a new one) and is reported as today: the attempt is recorded as failed, and its retry keeps
    the delivery's Message-ID. At most `max_messages` e-mails per connection (relays limit it)."""

    def __init__(self, smtp_url: str, *, idle_check: float = 1.0, max_messages: int = 100):
        self.smtp_url, self.idle_check, self.max_messages = smtp_url, idle_check, max_messages
        self._client: smtplib.SMTP | None = None
        self._sent = 0
        self._last_used = 0.0
        self.connections = 0  # opened so far (for the tests and the operator's curiosity)

    def _usable(self) -> bool:
        import time
        if self._client is None or self._sent >= self.max_messages:
            return False
        if time.monotonic() - self._last_used <= self.idle_check:
            return True
        try:
            return self._client.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def send(self, message: Message, *, data: bytes | None = None, envelope_from: str | None = None,
             recipients: list[str] | None = None) -> None:
        """Like `send_smtp`, on this connection (opened or replaced as needed). `data` goes to
        `recipients` (default: the message's To)."""
        import time
        try:
            if not self._usable():
                self.close()
                self._client = _connect(self.smtp_url)
                self._sent = 0
                self.connections += 1
            assert self._client is not None
            _transfer(self._client, message, data, envelope_from, recipients)
        except Exception as exc:
            self.close()
            _raise_as_delivery_error(exc)
        self._sent += 1
        self._last_used = time.monotonic()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _close(client)


_smtp = threading.local()


def smtp_connection(smtp_url: str) -> SmtpConnection:
    """This thread's SmtpConnection to `smtp_url` (made at first use)."""
    connection = getattr(_smtp, "connection", None)
    if connection is None or connection.smtp_url != smtp_url:
        if connection is not None:
            connection.close()
        connection = _smtp.connection = SmtpConnection(smtp_url)
    return connection


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _domain(mail_from: str) -> str:
    return mail_from.rsplit("@", 1)[-1] if "@" in mail_from else "balcao.localhost"


def backoff_seconds(config, attempts: int) -> float:
    """Delay before attempt `attempts + 1`: base * 2**(attempts - 1), capped at one hour."""
    return min(config.smtp_retry_base_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back (stored as UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ------------------------------------------------------------------ one attempt

@dataclass(frozen=True)
class Attempt:
    """An attempt claimed for this process: delivery `delivery_id`, attempt number `number`.
    `delivery`: the delivery as this claim created it (its first attempt), committed as it is —
    the caller need not read it again; None when the claim updated an existing one."""
    delivery_id: uuid.UUID
    number: int
    delivery: Delivery | None = None


def _claim(session: Session, delivery_id, *, status: str, attempts: int) -> bool:
    """Take the next attempt of a delivery: attempts + 1 and a lease. Only succeeds if nobody
    changed the row since it was read as (status, attempts): two workers never both win."""
    result = cast("CursorResult[Any]", session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == status, Delivery.attempts == attempts)
        .values(attempts=attempts + 1, next_attempt_at=utcnow() + timedelta(seconds=SEND_LEASE_SECONDS))
        .execution_options(synchronize_session=False)))
    return result.rowcount == 1


def _read_private_key(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _message_of(delivery: Delivery, config, images: tuple[InlineImage, ...] = ()) -> tuple[Message, bytes | None]:
    """The delivery's message and the bytes to send for it (rendering.message_bytes, DKIM-signed
    when configured); None: let smtplib.send_message serialise the message (SMTPUTF8)."""
    # An envelope only SMTPUTF8 carries (an address that is not ASCII): the To is added to the
    # message as the email package writes it for SMTPUTF8, which send_message asks the server for
    # (such a message is not DKIM-signed: send_message writes its bytes, not us).
    ascii_envelope = (config.mail_from + delivery.recipient).isascii()
    message = build_message(from_=delivery.from_header, to=delivery.recipient if ascii_envelope else None,
                            subject=delivery.subject, date=delivery.date_header, message_id=delivery.message_id,
                            text=delivery.text_body, html=delivery.html_body,
                            reply_to=delivery.reply_to or config.mail_reply_to, images=images)
    if not config.smtp_url:  # the dev mailbox: nothing goes on the wire
        return message, None
    if not ascii_envelope:
        return international(message_bytes(message), delivery.recipient), None
    if config.dkim_selector and config.dkim_private_key_file:
        return message, message_bytes(message, dkim_selector=config.dkim_selector,
                                      dkim_domain=_domain(config.mail_from),
                                      dkim_private_key=_read_private_key(config.dkim_private_key_file))
    return message, message_bytes(message)


def send(delivery: Delivery, config, images: tuple[InlineImage, ...] = ()) -> Exception | None:
    """Send one claimed delivery (no database work: its inline images, queries.inline_images, are
    read by the caller). Returns the delivery error, or None when it went out."""
    try:
        message, data = _message_of(delivery, config, images)
        if config.smtp_url:
            smtp_connection(config.smtp_url).send(message, data=data, envelope_from=config.mail_from,
                                                  recipients=[delivery.recipient])
        # else: the dev mailbox — storing the delivery is the delivery.
    except (PermanentDeliveryError, TemporaryDeliveryError) as exc:
        return exc
    return None


def record_outcome(session: Session, delivery_id, *, attempts: int, error: Exception | None, config) -> Delivery:
    """Status of the attempt number `attempts` + its event, in the caller's transaction. The
    delivery is read unless the caller's session already holds it (the consumer's, which loaded
    it for the send in this transaction): its status is set here whatever it was."""
    delivery = session.get_one(Delivery, delivery_id)
    key, now = delivery.idempotency_key, utcnow()
    if error is None:
        delivery.status, delivery.last_error, delivery.sent_at, delivery.next_attempt_at = "sent", None, now, None
        session.flush()
        record_event(session, outbox, "notification.sent", {
            "idempotency_key": key, "reference": delivery.reference, "message_id": delivery.message_id,
            "sent_at": now.isoformat(),
        })
        log.info("e-mail %s (%s) sent as %s (attempt %d)", key, delivery.template, delivery.message_id, attempts)
        return delivery
    permanent = isinstance(error, PermanentDeliveryError) or attempts >= config.smtp_max_attempts
    delivery.last_error = str(error)[:1000] or type(error).__name__
    if permanent:
        delivery.status, delivery.next_attempt_at = "failed", None
        log.warning("e-mail %s (%s) failed for good after %d attempt(s): %s", key, delivery.template, attempts,
                    delivery.last_error)
    else:
        delivery.status = "retrying"
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(config, attempts))
        log.warning("e-mail %s (%s) attempt %d failed, next attempt at %s: %s", key, delivery.template, attempts,
                    delivery.next_attempt_at.isoformat(), delivery.last_error)
    session.flush()
    record_event(session, outbox, "notification.failed", {
        "idempotency_key": key, "reference": delivery.reference, "error": delivery.last_error[:500],
        "failed_at": now.isoformat(), "permanent": permanent,
    })
    return delivery


# ------------------------------------------------------------------ the firms' profiles

def record_firm_profile(session: Session, *, profile: dict) -> bool:
    """firm.profile_changed (a loaded payload): keep the firm's name, Reply-To and logo, unless a
    newer revision is already kept. The logo's bytes are kept by digest (older ones stay: a
    delivery rendered with one sends it on every attempt). False when the event was older."""
    known = session.get(FirmProfile, profile["firm_id"], with_for_update=True)
    if known is not None and known.revision >= profile["revision"]:
        return False
    logo = profile.get("logo")
    digest = None
    if logo is not None:
        digest = logo["sha256"]
        if session.get(FirmLogo, digest) is None:
            session.add(FirmLogo(digest=digest, media_type=logo["media_type"],
                                 data=base64.b64decode(logo["data"]), created_at=utcnow()))
    if known is None:
        known = FirmProfile(firm_id=profile["firm_id"])
        session.add(known)
    known.revision, known.name, known.reply_to = profile["revision"], profile["name"], profile["reply_to"]
    known.logo_digest, known.updated_at = digest, utcnow()
    session.flush()
    return True


# ------------------------------------------------------------------ a requested e-mail

def load_request(request: dict) -> dict:
    """A `notification.email_requested` payload as the notifier reads it: the context must fit
    its template's schema; keys it does not know (a newer producer's) are ignored. (The consumer
    gets it so from handle_message: its catalogue schema is this one, loaded the same way.)"""
    return EmailRequested(unknown=EXCLUDE).load(dict(request))


@cache
def _sealed_schema(template: str):
    """The schema of a template's unsealed secrets (one instance per template: loading keeps no
    state in it)."""
    return EMAIL_SEALED[template]()


def delivery_by_key(session: Session, idempotency_key: str) -> Delivery | None:
    return session.execute(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).scalar_one_or_none()


def claim_first_attempt(session: Session, *, request: dict, config, keyring) -> Attempt | None:
    """The attempt to make now for a requested e-mail, at most once per idempotency key: a new
    delivery (rendered, "queued", attempt 1 with its lease), or the next attempt of a "queued"
    one whose lease ran out (the process died mid-send). None when there is nothing to do here:
    sent, failed, waiting for its retry, or an attempt under way (its lease running) — the
    retry job's business. The caller commits before sending (an IntegrityError at that commit:
    another worker created the same delivery first and owns its first attempt)."""
    existing, branding = queries.claim_lookup(session, request["idempotency_key"], request.get("firm_id"))
    if existing is None:
        delivery = _new_delivery(request, config=config, keyring=keyring, profile=branding)
        session.add(delivery)
        session.flush()
        return Attempt(delivery.id, delivery.attempts, delivery)
    lease = _aware(existing.next_attempt_at)
    if existing.status != "queued" or (lease is not None and lease > utcnow()):
        return None
    if not _claim(session, existing.id, status="queued", attempts=existing.attempts):
        return None
    return Attempt(existing.id, existing.attempts + 1)


def _new_delivery(request: dict, *, config, keyring, profile: FirmProfile | queries.Branding | None = None) -> Delivery:
    """The rendered e-mail as a "queued" delivery with its first attempt claimed. The context
    (leniently) and the unsealed secrets are checked against the template's schemas first.

    `profile`: the firm the e-mail is sent on behalf of, as firm.profile_changed last described it.
    Its display name replaces the `firm_name` the producer copied (which may predate a change: an
    invitation issued before it), in From, the subject and the body; its logo is shown at the top
    (attached inline); its Reply-To replaces the operator's.

    `request` is loaded (`load_request`, or the consumer's payload): its context already fits the
    template's schema."""
    secrets = _sealed_schema(request["template"]).load(keyring.unseal(request["sealed"]))
    context = dict(request["context"])
    branding: dict = {}
    if profile is not None:
        if "firm_name" in EMAIL_CONTEXTS[request["template"]]._declared_fields:
            context["firm_name"] = profile.name
        if profile.logo_digest:
            branding = {"logo_cid": logo_cid(profile.logo_digest, config.mail_from), "logo_alt": profile.name}
    subject, text, html = render_email(request["template"], {**context, **secrets, **branding})
    now = utcnow()
    return Delivery(
        id=uuid.uuid4(), idempotency_key=request["idempotency_key"], reference=request["reference"],
        template=request["template"], recipient=request["recipient"], subject=subject, text_body=text,
        html_body=html, date_header=formatdate(localtime=False, usegmt=True),
        # Stable across attempts: a receiving server can spot a duplicate.
        message_id=make_msgid(domain=_domain(config.mail_from)),
        from_header=from_shown(context.get("firm_name"), config.mail_from),
        status="queued", attempts=1, last_error=None, created_at=now,
        next_attempt_at=now + timedelta(seconds=SEND_LEASE_SECONDS),
        reply_to=profile.reply_to if profile is not None else None,
        logo_digest=profile.logo_digest if profile is not None and branding else None,
    )


# ------------------------------------------------------------------ the retry loop

def claim_due_attempt(session: Session, *, now: datetime, skip_locked: bool) -> Attempt | None:
    """The oldest due delivery (a retry whose time came, or an attempt whose lease ran out),
    claimed: None when there is none. Safe with several workers at once (SKIP LOCKED on
    PostgreSQL, the conditional update everywhere). The caller commits before sending."""
    while True:
        stmt = (select(Delivery.id, Delivery.status, Delivery.attempts)
                .where(Delivery.status.in_(("retrying", "queued")), Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at, Delivery.id).limit(1))
        if skip_locked:
            stmt = stmt.with_for_update(skip_locked=True)
        row = session.execute(stmt).first()
        if row is None:
            return None
        if _claim(session, row.id, status=row.status, attempts=row.attempts):
            return Attempt(row.id, row.attempts + 1)
        # another worker took it between our read and our update: look for the next one

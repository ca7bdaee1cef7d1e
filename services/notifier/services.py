"""Writes of the notifier service: render, send (or keep in the dev mailbox), record.

Never logged: the link, the sealed value, the bodies."""
from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.events import EmailRequested
from services.common.messaging import record_event, utcnow

from .models import Delivery, outbox
from .rendering import build_message, from_header, render_email

log = logging.getLogger("balcao.notifier")

SMTP_TIMEOUT = 10


class PermanentDeliveryError(Exception):
    """The SMTP server refused the message for good (5xx): retrying will not help."""


class TemporaryDeliveryError(Exception):
    """The SMTP server could not be reached or answered 4xx: the consumer retries with backoff."""


def send_smtp(smtp_url: str, message: EmailMessage) -> None:
    """Send one message to `smtp://[user:password@]host[:port][?starttls=1]` or `smtps://...`.

    Raises PermanentDeliveryError or TemporaryDeliveryError."""
    url = urlsplit(smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise PermanentDeliveryError(f"invalid SMTP URL scheme {url.scheme!r}")
    starttls = parse_qs(url.query).get("starttls", ["0"])[0].lower() in ("1", "true", "yes", "on")
    try:
        if url.scheme == "smtps":
            client = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=SMTP_TIMEOUT,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(url.hostname, url.port or (587 if starttls else 25), timeout=SMTP_TIMEOUT)
        with client:
            if starttls:
                client.starttls(context=ssl.create_default_context())
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _msg in exc.recipients.values()]
        error = "; ".join(f"{code} {_text(msg)}" for code, msg in exc.recipients.values())
        if all(code >= 500 for code in codes):
            raise PermanentDeliveryError(f"recipient refused: {error}") from exc
        raise TemporaryDeliveryError(f"recipient deferred: {error}") from exc
    except smtplib.SMTPResponseException as exc:
        error = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if exc.smtp_code >= 500:
            raise PermanentDeliveryError(error) from exc
        raise TemporaryDeliveryError(error) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, disconnected, TLS
        raise TemporaryDeliveryError(f"{type(exc).__name__}: {exc}") from exc


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _domain(mail_from: str) -> str:
    return mail_from.rsplit("@", 1)[-1] if "@" in mail_from else "balcao.localhost"


def deliver_email(session: Session, *, request: dict, config, keyring) -> Delivery:
    """Render and send the e-mail of a `notification.email_requested` payload, at most once
    per idempotency key. Returns its Delivery.

    Sent → status "sent" + `notification.sent`. Refused for good → status "failed" +
    `notification.failed` (returns normally). Temporary failure → the attempt is recorded
    (in its own transaction) and TemporaryDeliveryError is raised so the consumer retries."""
    request = EmailRequested().load(dict(request))
    key = request["idempotency_key"]
    existing = session.execute(select(Delivery).where(Delivery.idempotency_key == key)).scalar_one_or_none()
    if existing is not None and existing.status != "queued":
        return existing  # already sent or refused for good: never send twice

    context = {**request["context"], **keyring.unseal(request["sealed"])}
    subject, text, html = render_email(request["template"], context)
    values = dict(
        idempotency_key=key, reference=request["reference"], template=request["template"],
        recipient=request["recipient"], subject=subject, text_body=text, html_body=html,
        date_header=formatdate(localtime=False, usegmt=True),
        # Stable across retries: a receiving server can spot a duplicate.
        message_id=existing.message_id if existing else make_msgid(domain=_domain(config.mail_from)),
        attempts=(existing.attempts if existing else 0) + 1,
    )
    message = build_message(from_=from_header(request["context"].get("firm_name"), config.mail_from), to=values["recipient"], subject=subject,
                            date=values["date_header"], message_id=values["message_id"], text=text, html=html)
    values["from_header"] = str(message["From"])  # decoded, as a mail client shows it
    try:
        if config.smtp_url:
            send_smtp(config.smtp_url, message)
        # else: the dev mailbox — storing the delivery is the delivery.
    except PermanentDeliveryError as exc:
        delivery = _save(session, existing, values, status="failed", last_error=str(exc)[:1000])
        log.warning("e-mail %s (%s) refused for good: %s", key, request["template"], exc)
        record_event(session, outbox, "notification.failed", {
            "idempotency_key": key, "reference": delivery.reference, "error": str(exc)[:500] or "refused",
            "failed_at": utcnow().isoformat(), "permanent": True,
        })
        return delivery
    except TemporaryDeliveryError as exc:
        log.warning("e-mail %s (%s) attempt %d failed, will retry: %s", key, request["template"],
                    values["attempts"], exc)
        _remember_attempt(session, values, error=str(exc)[:1000])
        raise

    delivery = _save(session, existing, values, status="sent", last_error=None)
    delivery.sent_at = utcnow()
    session.flush()
    record_event(session, outbox, "notification.sent", {
        "idempotency_key": key, "reference": delivery.reference, "message_id": delivery.message_id,
        "sent_at": delivery.sent_at.isoformat(),
    })
    log.info("e-mail %s (%s) sent as %s", key, request["template"], delivery.message_id)
    return delivery


def _save(session: Session, existing: Delivery | None, values: dict, *, status: str,
          last_error: str | None) -> Delivery:
    delivery = existing or Delivery(id=uuid.uuid4(), created_at=utcnow())
    for name, value in values.items():
        setattr(delivery, name, value)
    delivery.status, delivery.last_error = status, last_error
    if existing is None:
        session.add(delivery)
    session.flush()
    return delivery


def _remember_attempt(session: Session, values: dict, *, error: str) -> None:
    """Record a failed attempt in its own short transaction: the caller's transaction is
    about to roll back (so the message is retried), the attempt count must survive it."""
    try:
        with Session(bind=session.get_bind()) as other, other.begin():
            row = other.execute(select(Delivery).where(
                Delivery.idempotency_key == values["idempotency_key"])).scalar_one_or_none()
            if row is None:
                row = Delivery(id=uuid.uuid4(), created_at=utcnow(), status="queued", **values)
                other.add(row)
            elif row.status == "queued":
                row.attempts = values["attempts"]
            row.last_error = error
    except Exception:  # never hide the delivery error behind a bookkeeping one
        log.exception("could not record the failed attempt of %s", values["idempotency_key"])

"""Event handlers of the notifier service (one per event type it consumes) and its periodic job.

These are the callers that own the transactions (services.py never commits). No transaction
spans SMTP: an attempt is committed before the server is contacted, its outcome after.
"""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.messaging import utcnow
from services.common.runtime import database, keyring

from . import queries, services
from .models import Delivery

RETRY_BATCH = 100


def deliver_email(session: Session, *, request: dict, config, keyring, loaded: bool = False) -> Delivery | None:
    """Render and send the e-mail of a `notification.email_requested` payload, at most once
    per idempotency key; its outcome is recorded in `session` (the consumer's transaction, which
    the caller commits). Returns the Delivery. Never raises for an SMTP failure:

    sent → "sent" + `notification.sent`; refused for good (5xx) → "failed" +
    `notification.failed` (permanent); temporary failure (refused connection, timeout, 4xx)
    → "retrying" with the next attempt scheduled (`retry_due_deliveries` makes it) +
    `notification.failed` (not permanent), or "failed" (permanent) once
    `config.smtp_max_attempts` attempts were made. `loaded`: `request` is loaded already (the
    consumer's payload, as `services.load_request` loads it)."""
    if not loaded:
        request = services.load_request(request)
    try:
        # The attempt commits before SMTP is contacted, in a transaction of its own.
        with database("notifier", config).begin() as own:
            attempt = services.claim_first_attempt(own, request=request, config=config, keyring=keyring)
    except IntegrityError:  # another worker created it a moment ago and owns its first attempt
        attempt = None
    if attempt is None:
        return services.delivery_by_key(session, request["idempotency_key"])
    delivery: Delivery | None
    if attempt.delivery is not None:
        # created (and committed) just above: the outcome updates it as it is, without reading it again
        delivery = attempt.delivery
        session.add(delivery)
    else:
        delivery = session.get(Delivery, attempt.delivery_id, populate_existing=True)
        if delivery is None:  # committed just above: never happens
            raise LookupError(f"delivery {attempt.delivery_id} vanished")
    error = services.send(delivery, config, queries.inline_images(session, delivery, config))
    return services.record_outcome(session, attempt.delivery_id, attempts=attempt.number, error=error,
                                   config=config)


def on_email_requested(payload: dict, ctx) -> None:
    # handle_message loaded the payload with the catalogue's schema: EmailRequested, as load_request
    deliver_email(ctx.session, request=payload, config=ctx.config, keyring=keyring(ctx.config),
                  loaded=True)


def on_firm_profile_changed(payload: dict, ctx) -> None:
    services.record_firm_profile(ctx.session, profile=payload)


def retry_due_deliveries(config) -> int:
    """Attempt again every delivery due for it (status "retrying" with `next_attempt_at` in
    the past, or "queued" whose attempt lease ran out). Safe to run in several processes at
    once: each delivery is claimed by one of them. Returns how many deliveries were attempted.
    Each attempt: claim (committed) → SMTP → outcome (committed)."""
    db = database("notifier", config)
    now = utcnow()
    done = 0
    while done < RETRY_BATCH:
        with db.begin() as session:
            attempt = services.claim_due_attempt(session, now=now, skip_locked=not db.is_sqlite)
            delivery = session.get(Delivery, attempt.delivery_id) if attempt is not None else None
            images = queries.inline_images(session, delivery, config) if delivery is not None else ()
        if attempt is None or delivery is None:
            break
        error = services.send(delivery, config, images)
        with db.begin() as session:
            services.record_outcome(session, attempt.delivery_id, attempts=attempt.number, error=error,
                                    config=config)
        done += 1
    return done


HANDLERS = {"notification.email_requested": on_email_requested,
            "firm.profile_changed": on_firm_profile_changed}

# Called every interval (seconds) with the Config by the worker process and the embedded mode.
PERIODIC = {"notifier.retry_due_deliveries": (1.0, retry_due_deliveries)}

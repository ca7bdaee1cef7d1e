"""Event handlers of the notifier service: one per event type it consumes."""
from __future__ import annotations

from services.common.keys import KeyRing

from .services import deliver_email, retry_due_deliveries


def on_email_requested(payload: dict, ctx) -> None:
    deliver_email(ctx.session, request=payload, config=ctx.config, keyring=KeyRing(ctx.config.keys_dir))


HANDLERS = {"notification.email_requested": on_email_requested}

# Called every interval (seconds) with the Config by the worker process and the embedded mode.
PERIODIC = {"notifier.retry_due_deliveries": (1.0, retry_due_deliveries)}

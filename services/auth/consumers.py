"""Event handlers of the auth service: one per event type it consumes."""
from __future__ import annotations

from services.common.runtime import keyring

from . import services


def on_membership_granted(payload, ctx):
    """A firm was linked to a client's login: send "Sua conta foi vinculada a …" with a link to
    report that it was not them (staff/admin memberships are not client links)."""
    if payload["role"] != "client":
        return None
    envelope = ctx.envelope or {}
    linked_at = services._parse_time(envelope.get("occurred_at")) or services.utcnow()
    services.notify_firm_linked(ctx.session, identity_id=payload["identity_id"], firm_id=payload["firm_id"],
                                firm_name=payload["firm_name"], linked_at=linked_at,
                                keyring=keyring(ctx.config), public_url=ctx.config.public_url)
    return None


def _not_yet(payload, ctx):  # placeholder: the staff-MFA projection lands with issue 4's next step
    return None


HANDLERS = {"membership.granted": on_membership_granted,
            "membership.revoked": _not_yet,
            "firm.mfa_policy_changed": _not_yet}

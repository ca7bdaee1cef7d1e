"""Event handlers of the invitations service: one per event type it consumes."""
from __future__ import annotations

from datetime import timedelta

from services.common.runtime import keyring

from . import services


def _issue(payload: dict, ctx, *, resent: bool) -> None:
    config = ctx.config
    services.issue_invitation(
        ctx.session, keyring=keyring(config), public_url=config.public_url,
        ttl=timedelta(days=config.invitation_ttl_days), firm_id=payload["firm_id"],
        firm_name=payload["firm_name"], firm_slug=payload["firm_slug"], subject=payload["subject"],
        subject_id=payload["client_user_id"], email=payload["email"], name=payload["name"], resent=resent)


def on_access_activated(payload: dict, ctx) -> None:
    if payload["send_now"]:
        _issue(payload, ctx, resent=False)


def on_invitation_requested(payload: dict, ctx) -> None:
    _issue(payload, ctx, resent=True)


def on_access_revoked(payload: dict, ctx) -> None:
    services.void_invitations(ctx.session, subject_id=payload["client_user_id"], subject=payload["subject"],
                              reason=f"access_{payload['reason']}")


def on_link_verified(payload: dict, ctx) -> None:
    services.accept_invitation(ctx.session, invitation_id=payload["invitation_id"],
                               identity_id=payload["identity_id"], email=payload["email"])


HANDLERS = {
    "client_user.access_activated": on_access_activated,
    "client_user.invitation_requested": on_invitation_requested,
    "client_user.access_revoked": on_access_revoked,
    "link.verified": on_link_verified,
}

"""Event handlers of the auth service: one per event type it consumes."""
from __future__ import annotations

from services.common.runtime import keyring

from . import invites, services


def on_membership_granted(payload, ctx):
    """A firm was linked to a client's login: send "Sua conta foi vinculada a …" with a link to
    report that it was not them (staff/admin memberships are not client links)."""
    if payload["role"] != "client":  # staff/admin: the firm's MFA policy applies to them
        on_membership_granted_staff(payload, ctx)
        return
    envelope = ctx.envelope or {}
    linked_at = services._parse_time(envelope.get("occurred_at")) or services.utcnow()
    services.notify_firm_linked(ctx.session, identity_id=payload["identity_id"], firm_id=payload["firm_id"],
                                firm_name=payload["firm_name"], linked_at=linked_at,
                                keyring=keyring(ctx.config), public_url=ctx.config.public_url)
    return None


def on_membership_granted_staff(payload, ctx):
    services.project_membership_granted(ctx.session, identity_id=payload["identity_id"],
                                        firm_id=payload["firm_id"], role=payload["role"])


def on_membership_revoked(payload, ctx):
    """The person no longer works at (or left) the firm: its MFA policy no longer applies. Only a
    client's access ending (`role` "client") leaves the staff membership of the same login alone."""
    if payload.get("role") == "client":
        return
    services.project_membership_revoked(ctx.session, identity_id=payload["identity_id"], firm_id=payload["firm_id"])


def on_mfa_policy_changed(payload, ctx):
    """A firm admin turned "exigir verificação em duas etapas" on or off for the firm's staff."""
    services.set_firm_mfa_policy(ctx.session, firm_id=payload["firm_id"],
                                 require_staff_mfa=payload["require_staff_mfa"])


def on_password_reset_requested(payload, ctx):
    """Esqueci a senha was posted for this e-mail: for a known one, a new reset token and the
    e-mail with its sealed link; for an unknown one, nothing (the request already answered alike)."""
    services.request_password_reset(ctx.session, email=payload["email"], keyring=keyring(ctx.config),
                                    public_url=ctx.config.public_url)


def on_invitation_created(payload, ctx):
    """A new invitation: its tickets may register or link until it expires (the projection)."""
    invites.project_invitation_created(ctx.session, invitation_id=payload["invitation_id"],
                                       expires_at=payload["expires_at"])


def on_invitation_voided(payload, ctx):
    """Resent, or the client user's access deactivated/deleted: its tickets register and link nothing."""
    invites.project_invitation_voided(ctx.session, invitation_id=payload["invitation_id"], reason=payload["reason"])


def on_invitation_accepted(payload, ctx):
    """The invitation was used: its tickets register and link nothing any more."""
    invites.project_invitation_accepted(ctx.session, invitation_id=payload["invitation_id"])


HANDLERS = {"membership.granted": on_membership_granted,
            "membership.revoked": on_membership_revoked,
            "firm.mfa_policy_changed": on_mfa_policy_changed,
            "password_reset.requested": on_password_reset_requested,
            "invitation.created": on_invitation_created,
            "invitation.voided": on_invitation_voided,
            "invitation.accepted": on_invitation_accepted}

"""Event handlers of the users service: one per event type it consumes. Each only calls a
service function; the messaging plumbing (validation, once-only effect, retries) is common."""
from . import services


def on_invitation_created(payload, ctx):
    services.record_invitation_created(ctx.session, invitation_id=payload["invitation_id"],
                                       firm_id=payload["firm_id"], client_user_id=payload["client_user_id"],
                                       expires_at=payload["expires_at"])


def on_invitation_accepted(payload, ctx):
    services.grant_membership(ctx.session, firm_id=payload["firm_id"], client_user_id=payload["client_user_id"],
                              identity_id=payload["identity_id"], invitation_id=payload["invitation_id"])


def on_invitation_acceptance_refused(payload, ctx):
    services.record_link_refused(ctx.session, invitation_id=payload["invitation_id"], firm_id=payload["firm_id"],
                                 client_user_id=payload["client_user_id"], identity_id=payload["identity_id"],
                                 reason=payload["reason"])


def on_notification_sent(payload, ctx):
    services.record_delivery(ctx.session, reference=payload["reference"], sent_at=payload["sent_at"])


def on_notification_failed(payload, ctx):
    services.record_delivery(ctx.session, reference=payload["reference"], error=payload["error"])


HANDLERS = {
    "invitation.created": on_invitation_created,
    "invitation.accepted": on_invitation_accepted,
    "invitation.acceptance_refused": on_invitation_acceptance_refused,
    "notification.sent": on_notification_sent,
    "notification.failed": on_notification_failed,
}

"""Event handlers of the users service: one per event type it consumes. Each only calls a
service function; the messaging plumbing (validation, once-only effect, retries) is common."""
from . import pii, services


def _configured(handler):
    """Handlers encrypt and decrypt personal data with the configured PII key."""
    def run(payload, ctx):
        if getattr(ctx, "config", None) is not None:
            pii.configure(ctx.config)
        return handler(payload, ctx)
    run.__name__ = handler.__name__
    return run


def on_invitation_created(payload, ctx):
    services.record_invitation_created(ctx.session, invitation_id=payload["invitation_id"],
                                       firm_id=payload["firm_id"], client_user_id=payload["client_user_id"],
                                       expires_at=payload["expires_at"], sealed_link=payload.get("sealed_link"),
                                       subject=payload["subject"])


def on_invitation_accepted(payload, ctx):
    services.grant_membership(ctx.session, firm_id=payload["firm_id"], client_user_id=payload["client_user_id"],
                              identity_id=payload["identity_id"], invitation_id=payload["invitation_id"],
                              subject=payload["subject"])


def on_invitation_acceptance_refused(payload, ctx):
    services.record_link_refused(ctx.session, invitation_id=payload["invitation_id"], firm_id=payload["firm_id"],
                                 client_user_id=payload["client_user_id"], identity_id=payload["identity_id"],
                                 reason=payload["reason"], subject=payload["subject"])


def on_notification_sent(payload, ctx):
    services.record_delivery(ctx.session, reference=payload["reference"], sent_at=payload["sent_at"])


def on_notification_failed(payload, ctx):
    services.record_delivery(ctx.session, reference=payload["reference"], error=payload["error"],
                             permanent=payload["permanent"])


def on_document_inbox_changed(payload, ctx):
    """The documents service counted a person's unread notices at a firm (the selector's count)."""
    services.record_inbox_count(ctx.session, firm_id=payload["firm_id"], identity_id=payload["identity_id"],
                                unread=payload["unread"], counted_at=payload["counted_at"])


def _when(value):
    from datetime import datetime
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def on_session_ended(payload, ctx):
    services.record_session_ended(ctx.session, identity_id=payload["identity_id"],
                                  session_hashes=payload["session_hashes"], ended_at=_when(ctx.envelope.get("occurred_at")))


def on_identity_logged_in(payload, ctx):
    services.record_staff_login(ctx.session, identity_id=payload["identity_id"], ip=payload["ip"],
                                at=payload["at"])


def on_firm_signup_confirmed(payload, ctx):
    """Cadastre seu escritório, confirmed: the firm, its departments and its Administrador (or, for a
    CNPJ that is already a firm's, nothing but the outcome the person's page shows)."""
    services.create_firm_from_signup(ctx.session, signup_id=payload["signup_id"], identity_id=payload["identity_id"],
                                     legal_name=payload["legal_name"], cnpj=payload["cnpj"],
                                     admin_name=payload["admin_name"], admin_email=payload["email"],
                                     ip=payload["ip"])


HANDLERS = {
    "invitation.created": on_invitation_created,
    "invitation.accepted": on_invitation_accepted,
    "invitation.acceptance_refused": on_invitation_acceptance_refused,
    "notification.sent": on_notification_sent,
    "notification.failed": on_notification_failed,
    "session.ended": on_session_ended,
    "identity.logged_in": on_identity_logged_in,
    "firm_signup.confirmed": on_firm_signup_confirmed,
    "document_inbox.changed": on_document_inbox_changed,
}


HANDLERS = {event_type: _configured(handler) for event_type, handler in HANDLERS.items()}


# --------------------------------------------------------------------------- periodic work

IMPORT_CHUNK = 100


def process_imports(config, *, max_rows: int = 500, chunk: int = IMPORT_CHUNK) -> int:
    """Background processing of confirmed bulk imports of every kind (PERIODIC: called every second).

    Takes the valid rows of queued jobs in chunks; each row is created in its own small
    transaction together with its event (services.import_row), so other staff are never
    blocked, nothing is half-created and a restarted process resumes where it stopped.
    Returns how many rows were processed in this call (at most about `max_rows`)."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from services.common.runtime import database

    from . import queries
    db = database("users", config)
    pii.configure(config)
    done = 0
    with db.begin() as session:
        job_ids = queries.queued_import_job_ids(session)
    for job_id in job_ids:
        with db.begin() as session:
            firm = queries.import_job_firm(session, job_id=job_id)
            kind = queries.import_job_kind(session, job_id=job_id)
        while done < max_rows:
            with db.begin() as session:
                lines = queries.pending_import_lines(session, job_id=job_id, limit=chunk)
            if not lines:
                with db.begin() as session:
                    services.finish_import_job(session, job_id=job_id)
                break
            progressed = 0
            for line in lines:
                try:
                    with db.begin() as session:
                        if not db.is_sqlite:
                            # A lost commit (crash) loses the row, its user and its event together:
                            # the row stays "valid" and is done again. So no need to wait for fsync.
                            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                        if services.import_row(session, job_id=job_id, line=line, firm=firm, kind=kind,
                                               skip_locked=not db.is_sqlite):
                            progressed += 1
                except IntegrityError:  # raced with a hand-made registration of the same e-mail / document
                    with db.begin() as session:
                        services.fail_import_row(session, job_id=job_id, line=line, kind=kind)
                    progressed += 1
            done += progressed
            if not progressed:
                break  # another worker holds these rows: leave the job to it for now
        if done >= max_rows:
            break
    return done


def prune_ended_sessions(config, *, now=None) -> int:
    """Forget ended sessions once every token they had has expired (PERIODIC: every 10 minutes).
    A token lives at most SESSION_TTL (or the absolute session limit, if longer) past its end."""
    from datetime import timedelta

    from services.common.runtime import database
    from services.common.sessions import SESSION_TTL

    from .models import utcnow
    keep = max(SESSION_TTL, timedelta(hours=config.session_absolute_hours)) + timedelta(hours=1)
    with database("users", config).begin() as session:
        return services.prune_ended_sessions(session, before=(now or utcnow()) - keep)


# name -> (interval in seconds, fn(config)): the worker process and the embedded mode call each
PERIODIC = {"users.process_imports": (1.0, process_imports),
            "users.prune_ended_sessions": (600.0, prune_ended_sessions)}

"""The steps in front of auth's invitation pages (`/auth/convite`, `/convite/registrar`,
`/convite/vincular` and the link branch of `/verificacao`):

1. the invitation must be pending and unexpired in auth's projection (`invites.invitation_status`):
   unknown → a "try again in a moment" page (invitation.created normally arrives before the person
   can click, but a loaded machine must not turn a valid invitation into a dead end); voided,
   accepted or expired → "Convite inválido ou expirado"; nothing created, nothing emitted;
2. a ticket from the copy link (`via` "copy") must carry, in this browser, the proof that its holder
   read the code e-mailed to the invitee; until then every invitation page answers the same
   "Confirme seu e-mail" step, whether or not the e-mail has an account.

`gate` is what the views call; `register_routes` adds the two code routes to auth's blueprint.
"""
from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from services.common.contracts import INVITATION_TICKET_AUDIENCE, normalize_email
from services.common.sessions import current_identity
from services.common.web import db, db_session

from . import clock, flows, invites
from .schemas import InvitationCodeSchema, TicketSchema, form_errors, load_ticket_claims
from .throttle import RATE_LIMITS

PROOF_KEY = "auth_invite_proof"      # {"inv", "email", "until"}: the code was right, in this browser
CODE_SENT_KEY = "auth_invite_code"   # {"inv", "until"}: a code was sent, show where to type it
PROOF_SECONDS = 30 * 60              # long enough to register, or to reset a forgotten password and link
WAIT_SECONDS = 5                     # the "try again in a moment" page reloads itself after this

# Per client IP (requests, window seconds), and per invitation: codes e-mailed to one invitee.
SEND_LIMIT = (5, 60)
CHECK_LIMIT = (30, 60)
CODES_PER_INVITATION = (5, 3600)


def _no_referrer(response):
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def ticket_claims(raw: str | None) -> dict | None:
    keyring = current_app.extensions["balcao.keyring"]
    return load_ticket_claims(keyring.verify("invitations", raw or "", audience=INVITATION_TICKET_AUDIENCE))


def _page_url(raw_ticket: str) -> str:
    return url_for("auth.invitation", ticket=raw_ticket)


# --------------------------------------------------------------------------- pages

def invalid_page():
    return _no_referrer(current_app.make_response((render_template("auth/invite_invalid.html"), 404)))


def wait_page(raw_ticket: str):
    """The invitation is not known here yet (its event is on its way): say so, and try again."""
    response = current_app.make_response((render_template(
        "auth/invite_wait.html", retry_url=_page_url(raw_ticket), refresh=WAIT_SECONDS if request.method == "GET"
        else None), 503))
    response.headers["Retry-After"] = str(WAIT_SECONDS)
    return _no_referrer(response)


def _too_many():
    return _no_referrer(flows.too_many())


def confirm_page(raw_ticket: str, claims: dict, status: int = 200, *, errors=None, notice: str | None = None):
    """"Confirme seu e-mail": the same page (wording, status, work) whether or not the e-mail has an
    account — the account is not looked at."""
    other = current_identity()
    if other is not None and normalize_email(other.email) == claims["email"]:
        other = None
    sent = session.get(CODE_SENT_KEY)
    code_sent = (isinstance(sent, dict) and sent.get("inv") == str(claims["inv"])
                 and sent.get("until", 0) >= clock.timestamp())
    return _no_referrer(current_app.make_response((render_template(
        "auth/invite_confirm.html", ticket=raw_ticket, claims=claims, code_sent=code_sent, errors=errors or {},
        notice=notice, other_identity=other, page_url=_page_url(raw_ticket),
        code_minutes=int(invites.CODE_TTL.total_seconds() // 60)), status)))


# --------------------------------------------------------------------------- the gate

def has_proof(claims: dict) -> bool:
    proof = session.get(PROOF_KEY)
    return (isinstance(proof, dict) and proof.get("inv") == str(claims["inv"])
            and proof.get("email") == claims["email"] and proof.get("until", 0) >= clock.timestamp())


def _state_gate(claims: dict, raw_ticket: str):
    status = invites.invitation_status(db_session(), invitation_id=claims["inv"])
    if status == invites.UNKNOWN:
        return wait_page(raw_ticket)
    if status != invites.USABLE:
        return invalid_page()
    return None


def gate(claims: dict, raw_ticket: str):
    """None when an invitation page may go on with this (verified) ticket; else the answer to give."""
    blocked = _state_gate(claims, raw_ticket)
    if blocked is not None:
        return blocked
    if claims["via"] != "email" and not has_proof(claims):
        return confirm_page(raw_ticket, claims, 200 if request.method == "GET" else 403)
    return None


# --------------------------------------------------------------------------- the code routes

def _code_step(form: dict):
    """(claims, raw ticket, None) when the code step applies to this ticket; else (.., .., answer)."""
    raw = form.get("ticket", "")
    claims = ticket_claims(raw)
    if claims is None:
        return None, raw, invalid_page()
    blocked = _state_gate(claims, raw)
    if blocked is not None:
        return claims, raw, blocked
    if claims["via"] == "email" or has_proof(claims):  # nothing to prove: on to the page
        return claims, raw, redirect(_page_url(raw), code=303)
    return claims, raw, None


def send_code():
    """[Enviar código]: e-mail a one-time code to the invitee (a copy link's holder must prove it)."""
    form = request.form.to_dict()
    claims, raw, answer = _code_step(form)
    if answer is not None:
        return answer
    if not flows.store().hit("invite_code_send", flows.client_ip(), *SEND_LIMIT):
        return _too_many()
    try:
        TicketSchema().load(form)
    except ValidationError as exc:
        return confirm_page(raw, claims, 422, errors=form_errors(exc))
    if not flows.store().hit("invite_code_per_invitation", str(claims["inv"]), *CODES_PER_INVITATION):
        return confirm_page(raw, claims, 429, notice=_(
            "Já enviamos vários códigos para este e-mail. Use o mais recente ou tente novamente mais tarde."))
    with db().begin() as s:
        invites.send_invitation_code(s, ticket=claims, keyring=current_app.extensions["balcao.keyring"])
    session[CODE_SENT_KEY] = {"inv": str(claims["inv"]), "until": clock.timestamp() + PROOF_SECONDS}
    return _no_referrer(redirect(_page_url(raw), code=303))


def check_code():
    """[Confirmar]: the code from the e-mail; right → on to the registration / Vincular Contas page."""
    form = request.form.to_dict()
    claims, raw, answer = _code_step(form)
    if answer is not None:
        return answer
    failures_limit, failures_window = RATE_LIMITS["failures"]
    if (not flows.store().hit("invite_code_check", flows.client_ip(), *CHECK_LIMIT)
            or flows.store().count("failures", flows.client_ip(), failures_window) >= failures_limit):
        return _too_many()
    try:
        data = InvitationCodeSchema().load(form)
    except ValidationError as exc:
        return confirm_page(raw, claims, 422, errors=form_errors(exc))
    with db().begin() as s:
        ok = invites.check_invitation_code(s, ticket=claims, code=data["code"])
    if not ok:
        flows.store().hit("failures", flows.client_ip(), failures_limit, failures_window)
        return confirm_page(raw, claims, 422, errors={"code": [_(
            "Código inválido ou expirado. Confira o código mais recente que enviamos ou peça outro.")]})
    session.pop(CODE_SENT_KEY, None)
    session[PROOF_KEY] = {"inv": str(claims["inv"]), "email": claims["email"],
                          "until": clock.timestamp() + PROOF_SECONDS}
    return _no_referrer(redirect(_page_url(raw), code=303))


def register_routes(bp) -> None:
    """Add the code routes to auth's blueprint (called once, where the blueprint is defined)."""
    bp.add_url_rule("/convite/codigo", "invitation_send_code", send_code, methods=["POST"])
    bp.add_url_rule("/convite/codigo/confirmar", "invitation_check_code", check_code, methods=["POST"])

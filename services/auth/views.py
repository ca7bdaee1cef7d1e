"""Pages of the auth service: login, logout, invitation registration/link, password reset.

Parse (schemas) → call (services, inside `db().begin()`) → render/redirect. No business logic.
"""
from __future__ import annotations

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, session,
                   url_for)
from flask_babel import gettext as _
from marshmallow import ValidationError

from services.common.gateway import PREFIXES
from services.common.sessions import (clear_session_cookie, current_identity, issue_session_token,
                                      set_session_cookie)
from services.common.web import db, db_session

from . import queries, services
from .schemas import (ForgotPasswordSchema, InvitationLinkSchema, InvitationRegisterSchema, LoginSchema,
                      LogoutSchema, ResetPasswordSchema, form_errors, load_ticket_claims, safe_next)

bp = Blueprint("auth", __name__, url_prefix=PREFIXES["auth"])

INVITATION_AUDIENCE = "balcao-invitation"


def _keyring():
    return current_app.extensions["balcao.keyring"]


def _no_referrer(response):
    """Pages whose URL carries a ticket or a token must not leak it in a Referer header."""
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _signed_in(identity, target: str):
    """A NEW session (new sid) for `identity`, then 303 to `target`."""
    token = issue_session_token(_keyring(), identity_id=identity.id, email=identity.email, name=identity.name)
    response = redirect(target, code=303)
    set_session_cookie(response, token)
    return response


# --------------------------------------------------------------------------- login / logout

@bp.route("/entrar", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("auth/login.html", email=request.args.get("email", ""),
                               next=safe_next(request.args.get("next")), errors={})
    form = request.form.to_dict()
    try:
        data = LoginSchema().load(form)
    except ValidationError as exc:
        return render_template("auth/login.html", email=form.get("email", ""),
                               next=safe_next(form.get("next")), errors=form_errors(exc)), 422
    with db().begin() as s:
        identity = services.authenticate(s, email=data["email"], password=data["password"])
    if identity is None:
        return render_template("auth/login.html", email=data["email"], next=data["next"], errors={},
                               failure=_("E-mail ou senha incorretos.")), 422
    return _signed_in(identity, data["next"] or "/")


@bp.post("/sair")
def logout():
    data = LogoutSchema().load(request.form.to_dict())
    response = redirect(data["next"] or url_for("auth.login"), code=303)
    clear_session_cookie(response)
    return response


# --------------------------------------------------------------------------- invitation ticket

def _ticket_or_404(raw: str | None) -> dict:
    claims = load_ticket_claims(_keyring().verify("invitations", raw or "", audience=INVITATION_AUDIENCE))
    if claims is None:
        abort(_no_referrer(current_app.make_response(
            (render_template("auth/invite_invalid.html"), 404))))
    return claims


def _invite_page(template: str, *, raw_ticket: str, claims: dict, status: int = 200, **context):
    other = current_identity()
    if other is not None and other.email.strip().lower() == claims["email"]:
        other = None
    page_url = url_for("auth.invitation", ticket=raw_ticket)
    forgot_url = url_for("auth.forgot_password", email=claims["email"], next=page_url)
    response = current_app.make_response((render_template(
        template, ticket=raw_ticket, claims=claims, other_identity=other, page_url=page_url,
        forgot_url=forgot_url, errors=context.pop("errors", {}), **context), status))
    return _no_referrer(response)


@bp.get("/convite")
def invitation():
    raw = request.args.get("ticket", "")
    claims = _ticket_or_404(raw)
    if queries.email_has_identity(db_session(), claims["email"]):
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims)
    return _invite_page("auth/invite_register.html", raw_ticket=raw, claims=claims, name=claims["name"])


@bp.post("/convite/registrar")
def invitation_register():
    form = request.form.to_dict()
    raw = form.get("ticket", "")
    claims = _ticket_or_404(raw)
    try:
        data = InvitationRegisterSchema().load(form)
    except ValidationError as exc:
        return _invite_page("auth/invite_register.html", raw_ticket=raw, claims=claims,
                            name=form.get("name", ""), errors=form_errors(exc), status=422)
    try:
        with db().begin() as s:
            identity = services.register_from_invitation(
                s, ticket=claims, name=data["name"], password=data["password"],
                password_confirmation=data["password_confirmation"])
    except services.PasswordPolicyError as exc:
        return _invite_page("auth/invite_register.html", raw_ticket=raw, claims=claims, name=data["name"],
                            errors=exc.field_errors, status=422)
    except services.EmailAlreadyRegistered:
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims, status=409)
    return _signed_in(identity, f"/vinculando/{claims['inv']}")


@bp.post("/convite/vincular")
def invitation_link():
    form = request.form.to_dict()
    raw = form.get("ticket", "")
    claims = _ticket_or_404(raw)
    if not queries.email_has_identity(db_session(), claims["email"]):
        return redirect(url_for("auth.invitation", ticket=raw), code=303)
    try:
        data = InvitationLinkSchema().load(form)
    except ValidationError as exc:
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims,
                            errors=form_errors(exc), status=422)
    with db().begin() as s:
        identity = services.verify_link_request(s, ticket=claims, password=data["password"])
    if identity is None:
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims, status=422,
                            errors={"password": [_("Senha incorreta. Nenhuma conta foi vinculada.")]})
    return _signed_in(identity, f"/vinculando/{claims['inv']}")


# --------------------------------------------------------------------------- password reset

@bp.route("/esqueci-senha", methods=["GET", "POST"])
def forgot_password():
    if request.method == "GET":
        next_url = safe_next(request.args.get("next"))
        if next_url:
            session["reset_next"] = next_url
        return render_template("auth/forgot.html", email=request.args.get("email", ""), next=next_url,
                               errors={}, sent=False)
    form = request.form.to_dict()
    try:
        data = ForgotPasswordSchema().load(form)
    except ValidationError as exc:
        return render_template("auth/forgot.html", email=form.get("email", ""),
                               next=safe_next(form.get("next")), errors=form_errors(exc), sent=False), 422
    if data["next"]:
        session["reset_next"] = data["next"]
    with db().begin() as s:
        services.request_password_reset(s, email=data["email"], keyring=_keyring(),
                                        public_url=current_app.config["BALCAO"].public_url)
    return render_template("auth/forgot.html", email=data["email"], next=data["next"], errors={}, sent=True)


def _reset_invalid():
    return _no_referrer(current_app.make_response((render_template("auth/reset_invalid.html"), 404)))


@bp.route("/redefinir-senha/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    if request.method == "GET":
        if queries.reset_token_by_raw(db_session(), token) is None:
            return _reset_invalid()
        return _no_referrer(current_app.make_response(render_template("auth/reset.html", errors={})))
    try:
        data = ResetPasswordSchema().load(request.form.to_dict())
    except ValidationError as exc:
        return _no_referrer(current_app.make_response(
            (render_template("auth/reset.html", errors=form_errors(exc)), 422)))
    try:
        with db().begin() as s:
            services.reset_password(s, raw_token=token, password=data["password"],
                                    password_confirmation=data["password_confirmation"])
    except services.InvalidResetToken:
        return _reset_invalid()
    except services.PasswordPolicyError as exc:
        return _no_referrer(current_app.make_response(
            (render_template("auth/reset.html", errors=exc.field_errors), 422)))
    flash(_("Senha alterada. Agora use a nova senha."), "success")
    target = safe_next(session.pop("reset_next", None)) or url_for("auth.login")
    return _no_referrer(redirect(target, code=303))

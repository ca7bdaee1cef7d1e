"""Pages of the auth service: login, logout, invitation registration/link, password reset,
session renewal and Minha conta.

Parse (schemas) → call (a step of `flows`, or a service function inside `db().begin()`) →
render/redirect. The login steps and the lock policy live in `flows`; no business logic here.
"""
from __future__ import annotations

import functools
import uuid

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from services.common.contracts import INVITATION_TICKET_AUDIENCE, normalize_email, safe_next
from services.common.frontchannel import logout_redirect
from services.common.gateway import PREFIXES
from services.common.sessions import (
    clear_session_cookie,
    current_identity,
    issue_session_token,
    session_claims_ignoring_expiry,
    set_session_cookie,
)
from services.common.web import db, db_session

from . import clock, flows, invite_steps, queries, services, signup_steps
from .schemas import (
    ChangePasswordSchema,
    CodeSchema,
    ForgotPasswordSchema,
    InvitationLinkSchema,
    InvitationRegisterSchema,
    LoginSchema,
    LogoutSchema,
    PasswordConfirmSchema,
    ResetPasswordSchema,
    form_errors,
    joining_staff_of,
    load_ticket_claims,
)

bp = Blueprint("auth", __name__, url_prefix=PREFIXES["auth"])


def _keyring():
    return current_app.extensions["balcao.keyring"]


def _no_referrer(response):
    """Pages whose URL carries a ticket or a token must not leak it in a Referer header."""
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _public_url() -> str:
    return current_app.config["BALCAO"].public_url


def _uuid(value):
    return uuid.UUID(str(value))


# --------------------------------------------------------------------------- login / logout

def _login_page(*, email: str, next_url: str | None, status: int = 200, errors=None, failure=None):
    return render_template("auth/login.html", email=email, next=next_url, errors=errors or {},
                           failure=failure), status


@bp.route("/entrar", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return _login_page(email=request.args.get("email", ""), next_url=safe_next(request.args.get("next")))
    form = request.form.to_dict()
    gate = flows.gate("login", form.get("email"))
    if gate.over_limit or gate.ip_blocked:
        return flows.too_many()
    try:
        data = LoginSchema().load(form)
    except ValidationError as exc:
        return _login_page(email=form.get("email", ""), next_url=safe_next(form.get("next")),
                           errors=form_errors(exc), status=422)
    step = flows.login_with_password(gate, email=data["email"], password=data["password"],
                                     next_url=data["next"] or "/")
    if step.response is not None:
        return step.response
    return _login_page(email=data["email"], next_url=data["next"], failure=step.error, status=422)


@bp.post("/sair")
def logout():
    """Ends the session, then sends the browser through every service that keeps ended sessions
    (front-channel logout, services/common/frontchannel.py) so that the old cookie is refused
    everywhere on the very next request; the chain ends at `next` or the login page."""
    data = LogoutSchema().load(request.form.to_dict())
    claims = session_claims_ignoring_expiry()  # an expired token still ends its session
    target = data["next"] or url_for("auth.login")
    if claims and claims.get("sid"):
        with db().begin() as s:
            services.end_sessions(s, identity_id=_uuid(claims["sub"]), sids=[claims["sid"]], reason="logout")
        target = logout_redirect(_keyring(), identity_id=claims["sub"], sids=[claims["sid"]], next_url=target)
    response = redirect(target, code=303)
    clear_session_cookie(response)
    return response


# --------------------------------------------------------------------------- invitation ticket

def _ticket_or_404(raw: str | None) -> dict:
    claims = load_ticket_claims(_keyring().verify("invitations", raw or "", audience=INVITATION_TICKET_AUDIENCE))
    if claims is None:
        abort(_no_referrer(current_app.make_response(
            (render_template("auth/invite_invalid.html"), 404))))
    return claims


def _invite_page(template: str, *, raw_ticket: str, claims: dict, status: int = 200, **context):
    other = current_identity()
    if other is not None and normalize_email(other.email) == claims["email"]:
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
    if (blocked := invite_steps.gate(claims, raw)) is not None:  # no longer pending; copy link unproven
        return blocked
    if queries.email_has_identity(db_session(), claims["email"]):
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims)
    return _invite_page("auth/invite_register.html", raw_ticket=raw, claims=claims, name=claims["name"])


@bp.post("/convite/registrar")
def invitation_register():
    form = request.form.to_dict()
    raw = form.get("ticket", "")
    claims = _ticket_or_404(raw)
    if (blocked := invite_steps.gate(claims, raw)) is not None:
        return blocked
    if flows.over_limit("register"):
        return flows.too_many()
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
    return flows.logged_in(identity, f"/vinculando/{claims['inv']}", reset=False, login=False,
                           joining_staff_of=joining_staff_of(claims))


@bp.post("/convite/vincular")
def invitation_link():
    form = request.form.to_dict()
    raw = form.get("ticket", "")
    claims = _ticket_or_404(raw)
    if (blocked := invite_steps.gate(claims, raw)) is not None:
        return blocked
    gate = flows.gate("link", claims["email"])
    if gate.over_limit or gate.ip_blocked:
        return flows.too_many()
    identity = queries.identity_by_email(db_session(), claims["email"])  # the request's read session
    if identity is None:
        return redirect(url_for("auth.invitation", ticket=raw), code=303)
    try:
        data = InvitationLinkSchema().load(form)
    except ValidationError as exc:
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims,
                            errors=form_errors(exc), status=422)
    if gate.locked_until is not None:
        return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims, status=422,
                            errors={"password": [flows.locked_message()]})
    step = flows.link_with_password(gate, identity=identity, password=data["password"], ticket_claims=claims,
                                    raw_ticket=raw, next_url=f"/vinculando/{claims['inv']}",
                                    joining_staff_of=joining_staff_of(claims))
    if step.response is not None:
        return step.response
    return _invite_page("auth/invite_link.html", raw_ticket=raw, claims=claims, status=422,
                        errors={"password": [step.error]})


# --------------------------------------------------------------------------- second factor at login / link

@bp.route("/verificacao", methods=["GET", "POST"])
def second_factor():
    pending = flows.pending_second_factor()
    if pending is None:
        return redirect(url_for("auth.login"), code=303)
    if request.method == "GET":
        return render_template("auth/second_factor.html", errors={}, purpose=pending["purpose"])
    gate = flows.gate("mfa", pending["email"])
    if gate.over_limit or gate.ip_blocked:
        return flows.too_many()
    try:
        data = CodeSchema().load(request.form.to_dict())
    except ValidationError as exc:
        return render_template("auth/second_factor.html", errors=form_errors(exc), purpose=pending["purpose"]), 422
    claims = None
    if pending["purpose"] == "link":
        claims = _ticket_or_404(pending.get("ticket"))
        if (blocked := invite_steps.gate(claims, pending["ticket"])) is not None:
            session.pop("auth_mfa", None)
            return blocked
    elif pending["purpose"] == "firm_signup":
        if (blocked := signup_steps.pending_second_factor_gate(pending)) is not None:
            session.pop("auth_mfa", None)
            return blocked
    step = flows.check_second_factor(pending, gate, code=data["code"], ticket_claims=claims,
                                     signup_gone=signup_steps.invalid_page)
    if step.response is not None:
        return step.response
    return render_template("auth/second_factor.html", errors={"code": [step.error]},
                           purpose=pending["purpose"]), 422


# --------------------------------------------------------------------------- MFA required by a firm

def _required_mfa_page(identity_id, status: int = 200, errors=None):
    from markupsafe import Markup
    identity = db_session().get(services.Identity, identity_id)
    if identity is None or not identity.mfa_pending_secret:
        session.pop("auth_mfa_enrol", None)
        return redirect(url_for("auth.login"), code=303)
    uri = services.mfa_provisioning_uri(identity)
    return render_template("auth/required_mfa.html", secret=identity.mfa_pending_secret, qr=Markup(_qr_svg(uri)),
                           errors=errors or {}), status


@bp.route("/verificacao-obrigatoria", methods=["GET", "POST"])
def required_mfa():
    """A staff member of a firm that requires MFA, without it: enrol now (the password was just
    checked at login), then the session starts."""
    pending = flows.pending_enrolment()
    if pending is None:
        return redirect(url_for("auth.login"), code=303)
    identity_id = _uuid(pending["identity"])
    if request.method == "GET":
        return _required_mfa_page(identity_id)
    if flows.over_limit("mfa") or flows.ip_blocked():
        return flows.too_many()
    try:
        data = CodeSchema().load(request.form.to_dict())
    except ValidationError as exc:
        return _required_mfa_page(identity_id, 422, form_errors(exc))
    try:
        identity, codes = flows.finish_required_enrolment(pending, code=data["code"])
    except services.InvalidCode:
        return _required_mfa_page(identity_id, 422, {
            "code": [_("Código inválido. Confira o código no aplicativo e tente novamente.")]})
    page = current_app.make_response(render_template("auth/required_mfa_codes.html", codes=codes,
                                                     next_url=pending["next"]))
    return flows.signed_in(identity, pending["next"], login=True, response=page)


# --------------------------------------------------------------------------- password reset

@bp.route("/esqueci-senha", methods=["GET", "POST"])
def forgot_password():
    if request.method == "GET":
        next_url = safe_next(request.args.get("next"))
        if next_url:
            session["reset_next"] = next_url
        return render_template("auth/forgot.html", email=request.args.get("email", ""), next=next_url,
                               errors={}, sent=False)
    if flows.over_limit("reset"):
        return flows.too_many()
    form = request.form.to_dict()
    try:
        data = ForgotPasswordSchema().load(form)
    except ValidationError as exc:
        return render_template("auth/forgot.html", email=form.get("email", ""),
                               next=safe_next(form.get("next")), errors=form_errors(exc), sent=False), 422
    if data["next"]:
        session["reset_next"] = data["next"]
    with db().begin() as s:  # the same one INSERT for any e-mail; auth's consumer does the rest
        services.record_password_reset_request(s, email=data["email"])
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
            identity = services.reset_password(s, raw_token=token, password=data["password"],
                                               password_confirmation=data["password_confirmation"],
                                               keyring=_keyring(), public_url=_public_url())
    except services.InvalidResetToken:
        return _reset_invalid()
    except services.PasswordPolicyError as exc:
        return _no_referrer(current_app.make_response(
            (render_template("auth/reset.html", errors=exc.field_errors), 422)))
    flows.forget_failures(identity.email)  # a reset ends a lock
    flash(_("Senha alterada. Agora use a nova senha."), "success")
    target = safe_next(session.pop("reset_next", None)) or url_for("auth.login")
    response = redirect(target, code=303)
    clear_session_cookie(response)  # every session ended with the reset
    return _no_referrer(response)


# --------------------------------------------------------------------------- session renewal

def _session_claims_ignoring_expiry() -> dict | None:
    """The session cookie's claims if auth signed them, even when the token has expired: renewal
    of a short-lived token is decided by the auth_sessions row, not by the token's exp."""
    claims = session_claims_ignoring_expiry()
    return claims if claims and claims.get("sub") else None


def _live_session(claims: dict | None):
    """The live auth_sessions row for these claims (its last_seen_at now), or None."""
    if not claims or not claims.get("sid"):
        return None
    try:
        identity_id = _uuid(claims["sub"])
    except ValueError:
        return None
    with db().begin() as s:
        row = services.touch_session(s, sid=claims["sid"], identity_id=identity_id)
        identity = s.get(services.Identity, identity_id) if row is not None else None
    return identity


def _to_login(next_url: str | None):
    target = url_for("auth.login", next=next_url) if next_url else url_for("auth.login")
    response = redirect(target, code=303)
    clear_session_cookie(response)
    return response


@bp.get("/sessao/renovar")
def renew_session():
    next_url = safe_next(request.args.get("next")) or "/"
    claims = _session_claims_ignoring_expiry()
    identity = _live_session(claims)
    if identity is None:
        return _to_login(next_url)
    token = issue_session_token(_keyring(), identity_id=identity.id, email=identity.email, name=identity.name,
                                session_id=claims["sid"])
    response = redirect(next_url, code=303)
    set_session_cookie(response, token)
    return response


# --------------------------------------------------------------------------- Minha conta

def requires_session(view):
    """Minha conta pages: a live session (not ended, idle or expired), else the login page."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        identity = current_identity()
        claims = {"sub": str(identity.id), "sid": identity.session_id} if identity else None
        g.auth_identity = _live_session(claims)
        if g.auth_identity is None:
            return _to_login(request.full_path.rstrip("?") if request.method == "GET" else url_for("auth.account"))
        g.auth_sid = identity.session_id
        return view(*args, **kwargs)
    return wrapper


@bp.get("/minha-conta")
@requires_session
def account():
    return redirect(url_for("auth.account_sessions"), code=303)


@bp.get("/minha-conta/sessoes")
@requires_session
def account_sessions():
    rows = queries.active_sessions(db_session(), identity_id=g.auth_identity.id, now=clock.now())
    sessions = [{"sid": r.sid, "device": queries.device_label(r.user_agent), "ip": r.ip,
                 "last_seen_at": r.last_seen_at, "current": r.sid == g.auth_sid} for r in rows]
    return render_template("auth/account/sessions.html", sessions=sessions, section="sessions")


@bp.post("/minha-conta/sessoes/<sid>/encerrar")
@requires_session
def account_end_session(sid: str):
    with db().begin() as s:
        ended = services.end_sessions(s, identity_id=g.auth_identity.id, sids=[sid[:64]], reason="ended_by_user")
    if not ended:
        abort(404)
    if sid == g.auth_sid:
        return _to_login(None)
    flash(_("Sessão encerrada."), "success")
    return redirect(url_for("auth.account_sessions"), code=303)


@bp.post("/minha-conta/sessoes/encerrar-outras")
@requires_session
def account_end_other_sessions():
    with db().begin() as s:
        services.end_sessions(s, identity_id=g.auth_identity.id, except_sid=g.auth_sid, reason="ended_by_user")
    flash(_("As outras sessões foram encerradas."), "success")
    return redirect(url_for("auth.account_sessions"), code=303)


@bp.route("/minha-conta/senha", methods=["GET", "POST"])
@requires_session
def account_password():
    if request.method == "GET":
        return render_template("auth/account/password.html", errors={}, section="password")
    try:
        data = ChangePasswordSchema().load(request.form.to_dict())
    except ValidationError as exc:
        return render_template("auth/account/password.html", errors=form_errors(exc), section="password"), 422
    try:
        with flows.guarded(g.auth_identity.email, _("Senha atual incorreta.")), db().begin() as s:
            identity = services.change_password(
                s, identity_id=g.auth_identity.id, current_password=data["current_password"],
                password=data["password"], password_confirmation=data["password_confirmation"],
                keyring=_keyring(), public_url=_public_url())
    except flows.Refused as exc:
        return render_template("auth/account/password.html", section="password",
                               errors={"current_password": [exc.message]}), 422
    except services.PasswordPolicyError as exc:
        return render_template("auth/account/password.html", errors=exc.field_errors, section="password"), 422
    flash(_("Senha alterada. As outras sessões foram encerradas."), "success")
    return flows.signed_in(identity, url_for("auth.account_sessions"))  # a new sid for this browser


def _mfa_page(status: int = 200, **context):
    identity = g.auth_identity
    context.setdefault("errors", {})
    remaining = (queries.remaining_recovery_codes(db_session(), identity_id=identity.id)
                 if identity.mfa_enabled else 0)
    return render_template("auth/account/mfa.html", identity=identity, remaining=remaining, section="mfa",
                           **context), status


def _qr_svg(uri: str) -> str:
    import io

    import segno
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, xmldecl=False, svgns=True,
                                    title=_("QR Code para o aplicativo autenticador"))
    return out.getvalue().decode()


def _setup_page(identity, status: int = 200, errors=None):
    from markupsafe import Markup
    uri = services.mfa_provisioning_uri(identity)
    return _mfa_page(status, setup=True, secret=identity.mfa_pending_secret, qr=Markup(_qr_svg(uri)),
                     errors=errors or {})


@bp.get("/minha-conta/verificacao-em-duas-etapas")
@requires_session
def account_mfa():
    return _mfa_page()


@bp.post("/minha-conta/verificacao-em-duas-etapas/ativar")
@requires_session
def account_mfa_begin():
    if g.auth_identity.mfa_enabled:
        return redirect(url_for("auth.account_mfa"), code=303)
    try:
        with flows.guarded(g.auth_identity.email, _("Senha incorreta.")):
            data = PasswordConfirmSchema().load(request.form.to_dict())
            with db().begin() as s:
                services.begin_mfa_enrollment(s, identity_id=g.auth_identity.id, password=data["password"])
                identity = s.get(services.Identity, g.auth_identity.id)
    except flows.Refused as exc:
        return _mfa_page(422, errors={"password": [exc.message]})
    except ValidationError as exc:
        return _mfa_page(422, errors=form_errors(exc))
    return _setup_page(identity)


@bp.post("/minha-conta/verificacao-em-duas-etapas/confirmar")
@requires_session
def account_mfa_confirm():
    identity = g.auth_identity
    if identity.mfa_enabled or not identity.mfa_pending_secret:
        return redirect(url_for("auth.account_mfa"), code=303)
    try:
        data = CodeSchema().load(request.form.to_dict())
        with db().begin() as s:
            codes = services.confirm_mfa_enrollment(s, identity_id=identity.id, code=data["code"],
                                                    keyring=_keyring(), public_url=_public_url())
    except ValidationError as exc:
        return _setup_page(identity, 422, form_errors(exc))
    except services.InvalidCode:
        return _setup_page(identity, 422,
                           {"code": [_("Código inválido. Confira o código no aplicativo e tente novamente.")]})
    return render_template("auth/account/recovery_codes.html", codes=codes, section="mfa")


@bp.post("/minha-conta/verificacao-em-duas-etapas/desativar")
@requires_session
def account_mfa_disable():
    try:
        with flows.guarded(g.auth_identity.email, _("Senha incorreta.")):
            if queries.staff_mfa_required(db_session(), identity_id=g.auth_identity.id):
                return _mfa_page(422, errors={"password": [_(
                    "Um escritório em que você trabalha exige a verificação em duas etapas; "
                    "ela não pode ser desativada.")]})
            data = PasswordConfirmSchema().load(request.form.to_dict())
            with db().begin() as s:
                services.disable_mfa(s, identity_id=g.auth_identity.id, password=data["password"],
                                     keyring=_keyring(), public_url=_public_url())
    except flows.Refused as exc:
        return _mfa_page(422, errors={"password": [exc.message]})
    except ValidationError as exc:
        return _mfa_page(422, errors=form_errors(exc))
    flash(_("Verificação em duas etapas desativada."), "success")
    return redirect(url_for("auth.account_mfa"), code=303)


@bp.route("/minha-conta/nao-fui-eu", methods=["GET", "POST"])
def not_me():
    """The link of the "Sua conta foi vinculada a …" e-mail: what to do if it was not you."""
    identity = current_identity()
    live = _live_session({"sub": str(identity.id), "sid": identity.session_id} if identity else None)
    if request.method == "GET":
        return _no_referrer(current_app.make_response(render_template("auth/account/not_me.html", live=live,
                                                                       done=False)))
    if live is None:
        return _to_login(url_for("auth.not_me"))
    with db().begin() as s:
        services.end_sessions(s, identity_id=live.id, reason="not_me")
        services.request_password_reset(s, email=live.email, keyring=_keyring(), public_url=_public_url())
    response = current_app.make_response(render_template("auth/account/not_me.html", live=None, done=True))
    clear_session_cookie(response)
    return _no_referrer(response)


invite_steps.register_routes(bp)  # the e-mail code step of the invitation copy link
signup_steps.register_routes(bp)  # Cadastre seu escritório (BALCAO_FIRM_SIGNUP=open)

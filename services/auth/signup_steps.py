"""The pages of the self-service sign-up of a firm (Cadastre seu escritório), on auth's blueprint:

* `/auth/cadastro-de-escritorio` — the form (Razão social, CNPJ, Nome, E-mail, Senha, Confirme a
  senha). Its answer is the same page whether or not the e-mail has a login ("Enviamos um link de
  confirmação para …"): the identities are not even looked at. Rate-limited per IP like auth's
  other forms, and per e-mail (a few confirmation e-mails an hour to one address; more get the
  same answer and no e-mail).
* `/auth/cadastro-de-escritorio/confirmar/<token>` — the e-mailed link. GET only shows what will
  be created (a mail scanner that follows the link confirms nothing); POST confirms: a new e-mail
  gets its login with the password of the form; an e-mail that has a login confirms with that
  login's own Senha (and second factor), under the lock policy of the login, and keeps it.

Both answer 404 unless BALCAO_FIRM_SIGNUP=open. After the confirmation the person is signed in and
sent to users' `/cadastro-de-escritorio/<id>`, which waits for the firm and opens its home.
`register_routes` adds the routes to auth's blueprint (see invite_steps for the same pattern).
"""
from __future__ import annotations

import hashlib

from flask import abort, current_app, render_template, request, url_for
from flask_babel import gettext
from flask_babel import gettext as _
from marshmallow import ValidationError

from services.common.contracts import normalize_email
from services.common.documents import format_cnpj
from services.common.forms import error_messages
from services.common.sessions import current_identity
from services.common.web import db, db_session

from . import flows, queries, services, signups
from .schemas import FirmSignupSchema, SignupConfirmSchema

TYPED_FIELDS = ("legal_name", "cnpj", "admin_name", "email")  # shown again after an error (never passwords)
PER_EMAIL = (3, 3600)  # confirmation e-mails to one address per hour; more get the same answer, no e-mail


def landing_path(signup_id) -> str:
    """Where the person goes once the sign-up is confirmed (users waits there for the firm)."""
    return f"/cadastro-de-escritorio/{signup_id}"


def _keyring():
    return current_app.extensions["balcao.keyring"]


def _no_referrer(response):
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def open_or_404() -> None:
    """Every sign-up page exists only with BALCAO_FIRM_SIGNUP=open."""
    if not current_app.config["BALCAO"].firm_signup:
        abort(404)


def _translate(message: str) -> str:
    return gettext(message)


# --------------------------------------------------------------------------- the form

def _form_page(typed: dict, errors: dict, status: int = 200):
    return render_template("auth/firm_signup.html", typed=typed, errors=errors), status


def signup_form():
    open_or_404()
    if request.method == "GET":
        return _form_page({}, {})
    if flows.over_limit("signup"):
        return flows.too_many()
    form = request.form.to_dict()
    typed = {key: form.get(key, "") for key in TYPED_FIELDS}
    errors: dict[str, list[str]] = {}
    data = None
    try:
        data = FirmSignupSchema().load(form)
    except ValidationError as exc:
        errors = error_messages(exc, translate=_translate)
    if "password" not in errors and "password_confirmation" not in errors:
        try:
            services.check_password_policy(form.get("password", ""), email=form.get("email", ""),
                                           confirmation=form.get("password_confirmation", ""))
        except services.PasswordPolicyError as exc:
            errors = {**exc.field_errors, **errors}
    if errors or data is None:
        return _form_page(typed, errors, 422)
    digest = hashlib.sha256(data["email"].encode("utf-8")).hexdigest()
    if flows.store().hit("signup_per_email", digest, *PER_EMAIL):
        with db().begin() as s:
            signups.request_firm_signup(s, legal_name=data["legal_name"], cnpj=data["cnpj"],
                                        admin_name=data["admin_name"], email=data["email"], password=data["password"],
                                        password_confirmation=data["password_confirmation"], keyring=_keyring(),
                                        public_url=current_app.config["BALCAO"].public_url)
    hours = int(signups.SIGNUP_TTL.total_seconds() // 3600)
    return render_template("auth/firm_signup_sent.html", email=data["email"], hours=hours)


# --------------------------------------------------------------------------- the e-mailed link

def invalid_page():
    """The link is unknown, used or expired (404): nothing is said about any sign-up or login."""
    hours = int(signups.SIGNUP_TTL.total_seconds() // 3600)
    return _no_referrer(current_app.make_response(
        (render_template("auth/firm_signup_invalid.html", hours=hours), 404)))


def _confirm_page(token: str, row, *, existing: bool, status: int = 200, errors=None):
    other = current_identity()
    if other is not None and normalize_email(other.email) == row.email:
        other = None
    page_url = url_for("auth.firm_signup_confirm", token=token)
    return _no_referrer(current_app.make_response((render_template(
        "auth/firm_signup_confirm.html", token=token, signup=row, cnpj=format_cnpj(row.cnpj), existing=existing,
        errors=errors or {}, other_identity=other, page_url=page_url,
        forgot_url=url_for("auth.forgot_password", email=row.email, next=page_url)), status)))


def confirm(token: str):
    open_or_404()
    row = signups.live_signup(db_session(), raw_token=token)
    if row is None:
        return invalid_page()
    signup_id, email = row.id, row.email
    existing = queries.email_has_identity(db_session(), email)
    if request.method == "GET":
        return _confirm_page(token, row, existing=existing)
    try:
        data = SignupConfirmSchema().load(request.form.to_dict())
    except ValidationError as exc:
        return _confirm_page(token, row, existing=existing, status=422,
                             errors=error_messages(exc, translate=_translate))
    if not existing:
        if flows.over_limit("signup_confirm"):
            return _no_referrer(flows.too_many())
        try:
            with db().begin() as s:
                identity, _row = signups.confirm_with_new_login(s, raw_token=token, ip=flows.client_ip())
        except signups.InvalidSignup:
            return invalid_page()
        except services.EmailAlreadyRegistered:  # a login appeared meanwhile: confirm with its password
            return _confirm_page(token, row, existing=True, status=409)
        return flows.logged_in(identity, landing_path(signup_id), reset=False, login=False)
    return _confirm_with_login(token, row, password=data["password"])


def _confirm_with_login(token: str, row, *, password: str | None):
    """The e-mail has a login: its own password (never the one typed on the form) confirms."""
    gate = flows.gate("signup_confirm", row.email)
    if gate.over_limit or gate.ip_blocked:
        return _no_referrer(flows.too_many())
    if not password:
        return _confirm_page(token, row, existing=True, status=422, errors={"password": [_("Informe a senha.")]})
    if gate.locked_until is not None:
        return _confirm_page(token, row, existing=True, status=422, errors={"password": [flows.locked_message()]})
    with db().begin() as s:
        identity = services.authenticate(s, email=row.email, password=password)
    if identity is None:
        message = (flows.locked_message() if flows.record_failure(row.email)
                   else _("Senha incorreta. Nenhum escritório foi criado."))
        return _confirm_page(token, row, existing=True, status=422, errors={"password": [message]})
    if identity.mfa_enabled:  # creating a firm with this login asks for the second factor too
        return flows.ask_second_factor(identity, purpose="firm_signup", next_url=landing_path(row.id),
                                       signup=str(row.id))
    try:
        with db().begin() as s:
            signups.confirm_with_existing_login(s, signup_id=row.id, identity_id=identity.id, ip=flows.client_ip())
    except signups.InvalidSignup:
        return invalid_page()
    return flows.logged_in(identity, landing_path(row.id), reset=gate.has_failures)


def pending_second_factor_gate(pending: dict):
    """For a second factor asked by a sign-up's confirmation: None while the sign-up may still be
    confirmed, else the answer to give (404 when sign-ups were closed meanwhile)."""
    open_or_404()
    if signups.live_signup(db_session(), signup_id=pending.get("signup")) is None:
        return invalid_page()
    return None


def register_routes(bp) -> None:
    """Add the sign-up routes to auth's blueprint (called once, where the blueprint is defined)."""
    bp.add_url_rule("/cadastro-de-escritorio", "firm_signup", signup_form, methods=["GET", "POST"])
    bp.add_url_rule("/cadastro-de-escritorio/confirmar/<token>", "firm_signup_confirm", confirm,
                    methods=["GET", "POST"])

"""The steps of signing in and the lock policy every password or code check goes through.

login → second factor (when enrolled) → enrolment forced by a firm's staff-MFA policy → session.
The state between steps lives in the signed browser session (`auth_mfa`, `auth_mfa_enrol`),
never in a session cookie: no session exists until every step is done. Vincular Contas, the
second factor and the Minha conta confirmations check passwords and codes under the same lock
policy (`gate` before the check, `record_failure` after a wrong one, `guarded` for a signed-in
person).

Views parse the form, call one function here and render what it returns; these functions run the
service functions in their own transactions, keep the throttle's counters and set the cookies.
"""
from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from services.common.contracts import normalize_email
from services.common.sessions import clear_session_cookie, issue_session_token, set_session_cookie
from services.common.web import db

from . import clock, queries, services, signups
from .throttle import RATE_LIMITS, Gate

MFA_PENDING_SECONDS = 300       # the password was right: the code is asked within 5 minutes
REQUIRED_MFA_SECONDS = 900      # the enrolment a firm requires is done within 15 minutes


def _keyring():
    return current_app.extensions["balcao.keyring"]


def _public_url() -> str:
    return current_app.config["BALCAO"].public_url


# --------------------------------------------------------------------------- guessing: locks, rate limits

def store():
    """The throttle's counters, shared by every worker (throttle.DatabaseStore or RedisStore)."""
    return current_app.extensions["balcao.auth.throttle"]


def client_ip() -> str:
    return request.remote_addr or ""


def over_limit(name: str) -> bool:
    """Count this request against RATE_LIMITS[name] for the client's IP; True when over it."""
    limit, window = RATE_LIMITS[name]
    return not store().hit(name, client_ip(), limit, window)


def too_many():
    """The 429 page (pt-BR) of a rate limit."""
    response = current_app.make_response((render_template("auth/too_many.html"), 429))
    response.headers["Retry-After"] = "60"
    return response


def locked_message() -> str:
    return _("Conta bloqueada temporariamente por excesso de tentativas. "
             "Tente novamente mais tarde ou redefina sua senha.")


# A device auth recognises: a cookie set at every successful sign-in, signed by auth and bound to
# the account (a digest of its e-mail), so a guesser can neither forge one nor mint a new one per
# guess. With it, the owner's failures and locks are counted apart from the IP's.
DEVICE_COOKIE = "balcao_device"
DEVICE_AUDIENCE = "balcao-device"
DEVICE_TTL = timedelta(days=180)


def _device_cookie_name() -> str:
    return f"__Host-{DEVICE_COOKIE}" if current_app.config["BALCAO"].https else DEVICE_COOKIE


def _account_digest(account: str) -> str:
    return hashlib.sha256(account.encode("utf-8")).hexdigest()


def _device_claims() -> dict | None:
    """The claims of this browser's device cookie if auth signed it; its signature is checked once
    per request (the throttle's gate and the sign-in both ask)."""
    if "auth_device_claims" not in g:
        g.auth_device_claims = _keyring().verify("auth", request.cookies.get(_device_cookie_name(), ""),
                                                 audience=DEVICE_AUDIENCE)
    return g.auth_device_claims


def _known_device(account: str) -> str | None:
    """The id of this browser's device if auth issued its cookie for `account`, else None."""
    claims = _device_claims()
    if not claims or claims.get("acct") != _account_digest(account) or not isinstance(claims.get("dev"), str):
        return None
    return claims["dev"]


def client_key(account: str) -> str:
    """Who is guessing, for the lock of `account`: a device auth recognises for it, else the IP."""
    device = _known_device(account)
    return f"device:{device}" if device else f"ip:{client_ip()}"


def _remember_device(response, account: str) -> None:
    """(Re)issue the device cookie for `account`: the same device id when the cookie is already
    this account's, a new random one otherwise."""
    device = _known_device(account) or secrets.token_urlsafe(16)
    token = _keyring().sign("auth", {"dev": device, "acct": _account_digest(account)}, audience=DEVICE_AUDIENCE,
                            ttl=DEVICE_TTL)
    https = current_app.config["BALCAO"].https
    response.set_cookie(_device_cookie_name(), token, max_age=int(DEVICE_TTL.total_seconds()), httponly=True,
                        samesite="Lax", secure=https, path="/")


def gate(name: str, email: str | None) -> Gate:
    """The throttle's one round trip before a password/code check (throttle.Gate): this request
    counted against RATE_LIMITS[name], the IP's failures and the locks of the account (for this
    client, and for everyone). A device recognised for the account is not held back by its IP's
    failures against other accounts."""
    account = normalize_email(email)
    client = client_key(account) if account else None
    found = store().gate(name, client_ip(), account or None, client)
    if client and client.startswith("device:"):
        found.ip_blocked = False
    return found


def is_locked(email: str) -> bool:
    account = normalize_email(email)
    return store().locked_until(account, client_key(account)) is not None


def record_failure(email: str) -> bool:
    """Count a failed password/code for the account from this client (and for the IP); True when
    the account is now locked for this client or for everyone. A lock that starts e-mails the
    owner (if the e-mail has an account) when the throttle's notice rule says so."""
    account = normalize_email(email)
    failure = store().failure(account, client_key(account), client_ip())
    if failure.notify and failure.locked_until is not None:
        with db().begin() as s:
            services.notify_account_locked(
                s, email=account, locked_until=datetime.fromtimestamp(failure.locked_until, UTC),
                everyone=failure.everyone, keyring=_keyring(), public_url=_public_url())
    return failure.locked_until is not None


def ip_blocked() -> bool:
    """Too many failed passwords/codes from this IP (any accounts) in the current window."""
    limit, window = RATE_LIMITS["failures"]
    return store().count("failures", client_ip(), window) >= limit


def forget_failures(email: str, *, session=None) -> None:
    """A success (or a password reset) ends the failures and lock growth of the account and of
    this client; in `session` (the caller's transaction on the auth database) when given."""
    account = normalize_email(email)
    store().success(account, client_key(account), session=session)


class Refused(Exception):
    """A password or code check that did not pass; `.message` is the pt-BR text for the field."""

    def __init__(self, message: str):
        super().__init__("refused")
        self.message = message


@contextlib.contextmanager
def guarded(email: str, wrong: str):
    """A signed-in person confirms a change with their password: Refused(locked) while the
    account is locked; a services.WrongPassword inside counts a failure and becomes Refused(`wrong`,
    or the lock message when that failure locked the account). Put the transaction INSIDE this
    block, so that it is rolled back before the failure is counted."""
    if is_locked(email):
        raise Refused(locked_message())
    try:
        yield
    except services.WrongPassword:
        raise Refused(locked_message() if record_failure(email) else wrong) from None


# --------------------------------------------------------------------------- sessions
# A sign-in is written in the caller's transaction (`begin_sign_in`: the session row, or the
# enrolment a firm requires), so that a login or a link commits its checks, its event and its
# session together; the cookies are set once that transaction has committed (`finish_sign_in`).

@dataclass
class SignIn:
    """What `begin_sign_in` wrote: `sid` the new session's, or None when a firm where the person
    works requires MFA of its staff and the enrolment was begun instead (no session yet)."""
    identity: services.Identity
    target: str
    sid: str | None


def _start_session(s, identity, *, login: bool) -> str:
    sid = services.start_session(s, identity_id=identity.id, user_agent=request.user_agent.string,
                                 ip=client_ip(), idle_minutes=current_app.config["AUTH_SESSION_IDLE_MINUTES"],
                                 absolute_hours=current_app.config["AUTH_SESSION_ABSOLUTE_HOURS"])
    if login:
        services.record_login(s, identity_id=identity.id, ip=client_ip())
    return sid


def _session_response(identity, target: str, sid: str, response=None):
    token = issue_session_token(_keyring(), identity_id=identity.id, email=identity.email, name=identity.name,
                                session_id=sid)
    response = response if response is not None else redirect(target, code=303)
    set_session_cookie(response, token)
    _remember_device(response, normalize_email(identity.email))
    return response


def signed_in(identity, target: str, *, login: bool = False, response=None, reset: bool = False):
    """A NEW session (new sid, recorded in auth_sessions) for `identity`, then 303 to `target`
    (or `response`, given the cookie). `login`: a successful login, reported as identity.logged_in.
    `reset`: the account had failures; they are reset in the same transaction."""
    with db().begin() as s:
        if reset:
            forget_failures(identity.email, session=s)
        sid = _start_session(s, identity, login=login)
    return _session_response(identity, target, sid, response)


def begin_sign_in(s, identity, target: str, *, reset: bool, joining_staff_of=None, login: bool = True) -> SignIn:
    """Password (and second factor, if any) checked: in the caller's transaction `s`, a new session,
    unless a firm where the person works requires MFA of its staff and none is enrolled: then the
    enrolment begins, and no session at all until it is done (`finish_sign_in` keeps it pending in
    the signed browser session, like the code step).
    `reset` (Gate.has_failures): the account's failure count is reset in the same transaction.
    `joining_staff_of`: the firm whose team invitation the person just accepted (registered or
    linked): its policy applies already, before the membership comes back through the events.
    `login`: reported as identity.logged_in (a registration is not a login)."""
    if reset:
        forget_failures(identity.email, session=s)
    if not identity.mfa_enabled and (
            queries.staff_mfa_required(s, identity_id=identity.id)
            or (joining_staff_of is not None and queries.firm_requires_staff_mfa(s, firm_id=joining_staff_of))):
        services.begin_required_mfa_enrollment(s, identity_id=identity.id)
        return SignIn(identity, target, None)
    return SignIn(identity, target, _start_session(s, identity, login=login))


def finish_sign_in(started: SignIn):
    """The answer to a sign-in `begin_sign_in` wrote (call it once the transaction committed): 303
    to the target with the session cookie, or to the enrolment the firm requires."""
    identity = started.identity
    if started.sid is None:
        session["auth_mfa_enrol"] = {"identity": str(identity.id), "email": identity.email, "next": started.target,
                                     "until": clock.timestamp() + REQUIRED_MFA_SECONDS}
        response = redirect(url_for("auth.required_mfa"), code=303)
        clear_session_cookie(response)
        return response
    return _session_response(identity, started.target, started.sid)


def logged_in(identity, target: str, *, reset: bool, joining_staff_of=None, login: bool = True):
    """`begin_sign_in` in a transaction of its own, then `finish_sign_in`."""
    with db().begin() as s:
        started = begin_sign_in(s, identity, target, reset=reset, joining_staff_of=joining_staff_of, login=login)
    return finish_sign_in(started)


# --------------------------------------------------------------------------- the steps

@dataclass
class Step:
    """What a step decided: `response` (the next step: a redirect carrying its cookies) when the
    password/code passed, else `error`, the pt-BR message the form shows again."""
    response: object = None
    error: str | None = None


def login_with_password(checked: Gate, *, email: str, password: str, next_url: str) -> Step:
    """The login form's password (after `gate("login", email)` let the request through)."""
    if checked.locked_until is not None:  # same answer whether or not the e-mail has an account
        return Step(error=locked_message())
    with db().begin() as s:  # the check and, when it passes without a second factor, the session
        identity = services.authenticate(s, email=email, password=password)
        started = (begin_sign_in(s, identity, next_url, reset=checked.has_failures)
                   if identity is not None and not identity.mfa_enabled else None)
    if identity is None:
        return Step(error=locked_message() if record_failure(email) else _("E-mail ou senha incorretos."))
    if started is None:  # the failure count is reset only once the second factor is right too
        return Step(response=ask_second_factor(identity, purpose="login", next_url=next_url))
    return Step(response=finish_sign_in(started))


def link_with_password(checked: Gate, *, identity, password: str, ticket_claims: dict, raw_ticket: str,
                       next_url: str, joining_staff_of=None) -> Step:
    """Vincular Contas: the password of `identity` (the invited e-mail's, read by the caller), after
    `gate("link", email)` let the request through and found no lock. Right, without a second factor:
    `link.verified`, the failure reset and the new session commit in ONE transaction."""
    if not services.password_matches(identity, password):
        return Step(error=locked_message() if record_failure(identity.email)
                    else _("Senha incorreta. Nenhuma conta foi vinculada."))
    if identity.mfa_enabled:  # linking a new firm asks for the second factor too
        if services.needs_rehash(identity):
            with db().begin() as s:
                services.rehash_if_needed(s, identity=identity, password=password)
        return Step(response=ask_second_factor(identity, purpose="link", next_url=next_url, ticket=raw_ticket))
    with db().begin() as s:
        services.rehash_if_needed(s, identity=identity, password=password)
        services.emit_link_verified(s, ticket=ticket_claims, identity=identity)
        started = begin_sign_in(s, identity, next_url, reset=checked.has_failures, joining_staff_of=joining_staff_of)
    return Step(response=finish_sign_in(started))


def ask_second_factor(identity, *, purpose: str, next_url: str, ticket: str | None = None,
                      signup: str | None = None):
    """The password was right: remember that (signed browser session, 5 minutes) and ask the code.
    `purpose` "login"; "link" with the invitation `ticket` whose link.verified the code completes;
    or "firm_signup" with the id of the sign-up (Cadastre seu escritório) the code confirms."""
    session["auth_mfa"] = {"identity": str(identity.id), "email": identity.email, "purpose": purpose,
                           "next": next_url, "ticket": ticket, "signup": signup,
                           "until": clock.timestamp() + MFA_PENDING_SECONDS}
    return redirect(url_for("auth.second_factor"), code=303)


def _pending(key: str) -> dict | None:
    pending = session.get(key)
    if not isinstance(pending, dict) or pending.get("until", 0) < clock.timestamp():
        session.pop(key, None)
        return None
    return pending


def pending_second_factor() -> dict | None:
    """The login/link waiting for its code in this browser (dropped once expired), or None."""
    return _pending("auth_mfa")


def check_second_factor(pending: dict, checked: Gate, *, code: str, ticket_claims: dict | None,
                        signup_gone=None) -> Step:
    """The code of a pending login/link/sign-up (after `gate("mfa", pending["email"])` let it through).
    For a link, `ticket_claims` are the invitation's: link.verified is emitted with the code. For a
    sign-up (purpose "firm_signup"), the code confirms it (firm_signup.confirmed); when the sign-up
    was used or expired meanwhile, the answer is `signup_gone()` (the invalid-link page)."""
    if checked.locked_until is not None:
        session.pop("auth_mfa", None)
        return Step(error=locked_message())
    identity_id = uuid.UUID(str(pending["identity"]))
    signup = pending.get("purpose") == "firm_signup"
    with db().begin() as s:  # the code, a link's event and (but for a sign-up, confirmed first) the session
        ok = services.verify_second_factor(s, identity_id=identity_id, code=code)
        identity = s.get(services.Identity, identity_id) if ok else None
        if identity is not None and ticket_claims is not None:
            services.emit_link_verified(s, ticket=ticket_claims, identity=identity)
        started = (begin_sign_in(s, identity, pending["next"], reset=checked.has_failures)
                   if identity is not None and not signup else None)
    if identity is not None and signup:
        try:
            with db().begin() as s:
                signups.confirm_with_existing_login(s, signup_id=pending.get("signup"), identity_id=identity.id,
                                                    ip=client_ip())
        except signups.InvalidSignup:
            session.pop("auth_mfa", None)
            return Step(response=signup_gone())
    if identity is None:
        return Step(error=locked_message() if record_failure(pending["email"])
                    else _("Código inválido. Confira o código no aplicativo e tente novamente."))
    session.pop("auth_mfa", None)
    if started is None:  # a sign-up, confirmed above
        return Step(response=logged_in(identity, pending["next"], reset=checked.has_failures))
    return Step(response=finish_sign_in(started))


def pending_enrolment() -> dict | None:
    """The login waiting for the enrolment its firm requires (dropped once expired), or None."""
    return _pending("auth_mfa_enrol")


def finish_required_enrolment(pending: dict, *, code: str):
    """The first code of the enrolment a firm requires: (identity, recovery codes). Raises
    services.InvalidCode. The caller shows the codes on the page it gives `signed_in`."""
    identity_id = uuid.UUID(str(pending["identity"]))
    with db().begin() as s:
        codes = services.confirm_mfa_enrollment(s, identity_id=identity_id, code=code,
                                                keyring=_keyring(), public_url=_public_url())
        identity = s.get(services.Identity, identity_id)
    session.pop("auth_mfa_enrol", None)
    return identity, codes

"""The login session: a signed token (EdDSA) issued by auth in an HttpOnly cookie; every
service verifies it with auth's public key, without calling auth."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from urllib.parse import quote

import jwt
from flask import abort, current_app, g, has_app_context, redirect, request

from .contracts import SESSION_AUDIENCE

SESSION_COOKIE = "balcao_session"
# The token is short-lived: every service refuses it 10 minutes after issue, and auth renews
# it (/auth/sessao/renovar) only while the session's record is live (not ended, idle or past its
# absolute lifetime). So ending a session takes effect everywhere within minutes at worst.
SESSION_TTL = timedelta(minutes=10)
RENEWAL_PATH = "/auth/sessao/renovar"


def cookie_name(https: bool) -> str:
    return f"__Host-{SESSION_COOKIE}" if https else SESSION_COOKIE


def issue_session_token(keyring, *, identity_id, email: str, name: str, session_id: str | None = None) -> str:
    token = keyring.sign("auth", {"sub": str(identity_id), "email": email, "name": name,
                                  "sid": session_id or uuid.uuid4().hex},
                         audience=SESSION_AUDIENCE, ttl=SESSION_TTL)
    if has_app_context():
        # Signed here, just now: authentic by construction. The response's CSRF binding reads its
        # claims (web.py) without checking the signature it was just given.
        g.setdefault(_VERIFIED, {})[token] = jwt.decode(token, options={"verify_signature": False})
    return token


def set_session_cookie(response, token: str) -> None:
    https = current_app.config["BALCAO"].https
    # The cookie outlives the token (up to the session's absolute lifetime) so that an expired
    # token can be brought to auth for renewal.
    max_age = int(timedelta(hours=current_app.config["BALCAO"].session_absolute_hours).total_seconds())
    response.set_cookie(cookie_name(https), token, max_age=max_age,
                        httponly=True, samesite="Lax", secure=https, path="/")


def clear_session_cookie(response) -> None:
    https = current_app.config["BALCAO"].https
    response.delete_cookie(cookie_name(https), path="/", secure=https, httponly=True, samesite="Lax")


class Identity:
    """Who is logged in, as the session token says (auth vouches for it)."""

    def __init__(self, claims: dict):
        self.id = uuid.UUID(claims["sub"])
        self.email = claims["email"]
        self.name = claims["name"]
        self.session_id = claims.get("sid")

    def __repr__(self):
        return f"<Identity {self.email}>"


# token -> its claims, for this request: each token's signature is checked at most once per request
_VERIFIED = "balcao_verified_sessions"


def _cookie_token() -> str | None:
    return request.cookies.get(cookie_name(current_app.config["BALCAO"].https))


def authentic_session_claims(token: str | None) -> dict | None:
    """A session token's claims if auth signed it, even past `exp`; verified once per request
    (the renewal check, the identity and the CSRF binding all read the same cookie)."""
    if not token:
        return None
    verified = g.setdefault(_VERIFIED, {})
    if token not in verified:
        verified[token] = current_app.extensions["balcao.keyring"].verify("auth", token, audience=SESSION_AUDIENCE,
                                                                          verify_exp=False)
    return verified[token]


def current_identity() -> Identity | None:
    """Who the session cookie says is logged in; None without a cookie, or when its token is
    forged or expired (an expired one is renewed by auth, see `renewal_state`)."""
    if "balcao_identity" not in g:
        claims = authentic_session_claims(_cookie_token())
        # valid while now < exp, as PyJWT's own expiry check
        g.balcao_identity = Identity(claims) if claims and time.time() < float(claims["exp"]) else None
    return g.balcao_identity


def session_claims_ignoring_expiry() -> dict | None:
    """The session cookie's claims if auth signed them, even past `exp` (for renewal and logout)."""
    return authentic_session_claims(_cookie_token())


def renewal_state() -> str | None:
    """"expired": an authentic token past its `exp`; "soon": valid with less than half its
    lifetime left; None: no token, a forged one, or a fresh one."""
    claims = session_claims_ignoring_expiry()
    if not claims:
        return None
    now = time.time()
    exp, iat = float(claims["exp"]), float(claims["iat"])
    if exp <= now:
        return "expired"
    if exp - now < (exp - iat) / 2:
        return "soon"
    return None


def identity_or_login() -> Identity:
    """The logged-in person, or (abort) a redirect to the login page that comes back here."""
    identity = current_identity()
    if identity is None:
        target = request.full_path.rstrip("?") if request.query_string else request.path
        abort(redirect("/auth/entrar?next=" + quote(target, safe="/"), code=303))
    return identity

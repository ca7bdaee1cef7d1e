"""The login session: a signed token (EdDSA) issued by auth in an HttpOnly cookie; every
service verifies it with auth's public key, without calling auth."""
from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app, g, request

SESSION_COOKIE = "balcao_session"
SESSION_AUDIENCE = "balcao-session"
SESSION_TTL = timedelta(hours=12)


def cookie_name(https: bool) -> str:
    return f"__Host-{SESSION_COOKIE}" if https else SESSION_COOKIE


def issue_session_token(keyring, *, identity_id, email: str, name: str, session_id: str | None = None) -> str:
    return keyring.sign("auth", {"sub": str(identity_id), "email": email, "name": name,
                                 "sid": session_id or uuid.uuid4().hex},
                        audience=SESSION_AUDIENCE, ttl=SESSION_TTL)


def set_session_cookie(response, token: str) -> None:
    https = current_app.config["BALCAO"].https
    response.set_cookie(cookie_name(https), token, max_age=int(SESSION_TTL.total_seconds()),
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


def current_identity() -> Identity | None:
    if "balcao_identity" not in g:
        token = request.cookies.get(cookie_name(current_app.config["BALCAO"].https))
        claims = current_app.extensions["balcao.keyring"].verify("auth", token, audience=SESSION_AUDIENCE)
        g.balcao_identity = Identity(claims) if claims else None
    return g.balcao_identity

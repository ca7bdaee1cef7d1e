"""The small rules every service must apply in exactly the same way.

A copy of one of these in a service drifts sooner or later (an e-mail compared differently in
two places is an account-takeover bug; a redirect target checked differently in one place is
an open redirect), so each lives here once and the services import it.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import unquote

# Audiences of the signed tokens that cross services (KeyRing.sign / KeyRing.verify).
SESSION_AUDIENCE = "balcao-session"                # the login session, issued by auth
INVITATION_TICKET_AUDIENCE = "balcao-invitation"   # invitations → browser → auth
LOGOUT_NOTICE_AUDIENCE = "balcao-logout-notice"    # auth → browser → services keeping ended sessions


def normalize_email(value: str | None) -> str:
    """The form of an e-mail address used wherever one is stored as a key or compared."""
    return (value or "").strip().lower()


def session_hash(sid: str) -> str:
    """How services other than auth know a session: the SHA-256 (hex) of its sid, never the sid."""
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


# A redirect target must be a path on this origin written in plain URL characters: no scheme, no
# host, no "//" or "/\" that a browser reads as another host, no whitespace or control character
# (browsers drop tab/CR/LF from URLs, so "/\t/evil.example" becomes "//evil.example"), nothing
# outside ASCII (percent-encode it). Percent-encoded sequences are allowed, but the decoded form
# must pass the same checks, for proxies and frameworks that decode before redirecting.
_SAFE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*")
_MAX_NEXT = 2000


def safe_next(value: str | None, default: str | None = None) -> str | None:
    """`value` if it is a safe relative redirect target on this origin, else `default`."""
    if not isinstance(value, str) or not value or len(value) > _MAX_NEXT:
        return default
    if not _SAFE_PATH.fullmatch(value):
        return default
    path, _, query = value.partition("?")
    path, query = unquote(path), unquote(query)
    if path.startswith(("//", "/\\")) or "\\" in path or any(_control(ch) or ch == " " for ch in path):
        return default
    if any(_control(ch) for ch in query):
        return default
    return value


def _control(ch: str) -> bool:
    return ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


def as_uuid(value) -> uuid.UUID:
    """A UUID, as given or parsed from its text (ValueError for anything else)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

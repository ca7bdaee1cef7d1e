"""E-mail rendering (a standalone Jinja environment, pt-BR) and MIME assembly, plus the
text-to-HTML helper of the dev mailbox. Nothing here touches the database or the network."""
from __future__ import annotations

import base64
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

EMAIL_TEMPLATES = Path(__file__).parent / "templates" / "emails"


def _available_templates() -> tuple[str, ...]:
    """Every name with both a text and an HTML file: adding an e-mail is adding two files
    (the text file sets the subject with `{% set subject = ... -%}` on its first line)."""
    return tuple(sorted(path.stem for path in EMAIL_TEMPLATES.glob("*.txt")
                        if path.with_suffix(".html").exists()))


TEMPLATES = _available_templates()

_env = Environment(loader=FileSystemLoader(str(EMAIL_TEMPLATES)),
                   autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
                   undefined=StrictUndefined, keep_trailing_newline=True)

BRASILIA: tzinfo
try:
    BRASILIA = ZoneInfo("America/Sao_Paulo")
except ZoneInfoNotFoundError:  # no tz database: Brasília has had no daylight saving time since 2019
    BRASILIA = timezone(timedelta(hours=-3))


def br_datetime(value) -> str:
    """An ISO-8601 moment (as auth sends `locked_until`, `changed_at`, `linked_at`) in pt-BR:
    "28/11/2026 às 14:05 (horário de Brasília)". Anything else (already formatted) as given."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(BRASILIA)
    return f"{local:%d/%m/%Y} às {local:%H:%M} (horário de Brasília)"


MFA_CHANGES = {"enabled": "ativada", "disabled": "desativada",
               "recovery_codes_regenerated": "códigos de recuperação gerados"}


def mfa_change(value) -> str:
    """What happened to the second factor ("enabled"/"disabled"/…) in pt-BR; pt-BR text as given."""
    return MFA_CHANGES.get(str(value), str(value))


_env.filters["br_datetime"] = br_datetime
_env.filters["mfa_change"] = mfa_change


def _one_line(value: str) -> str:
    """Header-safe: no CR/LF, collapsed whitespace."""
    return " ".join(str(value).split())


def render_email(template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of one e-mail. `context` includes the unsealed secrets."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown e-mail template {template!r}")
    values = {"expires_on": None, "name": "", "logo_cid": None, "logo_alt": "", **context}
    text_module = _env.get_template(f"{template}.txt").make_module(values)
    subject = _one_line(getattr(text_module, "subject", "") or "")
    if not subject:
        raise ValueError(f"e-mail template {template!r} sets no subject")
    text = str(text_module)
    html = _env.get_template(f"{template}.html").render(subject=subject, **values)
    return subject, text, html


def from_header(firm_name: str | None, mail_from: str) -> str:
    display = f"{_one_line(firm_name)} via Balcão" if firm_name else "Balcão"
    return formataddr((display, mail_from))


# RFC 5322 specials: a display name holding one is written as a quoted string
_SPECIALS = frozenset('()<>@,:;."[]\\')


def from_shown(firm_name: str | None, mail_from: str) -> str:
    """The From of `from_header` as a mail client shows it (kept in the delivery): the display name
    decoded, in quotes when it holds a special. What the email package gives for `from_header`'s
    value, without parsing its encoded words."""
    display = f"{_one_line(firm_name)} via Balcão" if firm_name else "Balcão"
    if not _SPECIALS.isdisjoint(display):
        display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{display} <{mail_from}>"


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML body shows as `cid:<cid>` (a firm's logo): attached, not fetched from afar."""

    cid: str         # without the angle brackets
    media_type: str  # "image/png" | "image/jpeg"
    data: bytes


def logo_cid(digest: str, mail_from: str) -> str:
    """The Content-ID of a logo: the same for every e-mail that carries that image."""
    domain = mail_from.rsplit("@", 1)[-1] if "@" in mail_from else "balcao.localhost"
    return f"logo.{digest[:32]}@{domain}"


def build_message(*, from_: str, to: str, subject: str, date: str, message_id: str, text: str,
                  html: str, reply_to: str | None = None, images: tuple[InlineImage, ...] = ()) -> EmailMessage:
    """multipart/alternative (text, then HTML), quoted-printable so that no relay re-encodes
    the body (which would break a DKIM signature). With `images`, the HTML becomes
    multipart/related: the HTML, then each image inline under its Content-ID (RFC 2392), so that
    a mail client shows the logo without loading anything from the internet."""
    message = EmailMessage()
    message["From"] = from_
    message["To"] = to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = message_id
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    if images:
        html_part = message.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        for image in images:
            maintype, subtype = image.media_type.split("/", 1)
            html_part.add_related(image.data, maintype=maintype, subtype=subtype, cid=f"<{image.cid}>",
                                  disposition="inline", filename=f"logo.{'jpg' if subtype == 'jpeg' else subtype}")
    return message


DKIM_SIGNED_HEADERS = (b"from", b"to", b"reply-to", b"subject", b"date", b"message-id", b"mime-version",
                       b"content-type")


def message_bytes(message: EmailMessage, *, dkim_selector: str | None = None, dkim_domain: str | None = None,
                  dkim_private_key: bytes | None = None) -> bytes:
    """The message as sent over SMTP (CRLF line ends), DKIM-signed when a key is given."""
    data = message.as_bytes(policy=email.policy.SMTP)
    if dkim_selector and dkim_domain and dkim_private_key:
        import dkim
        signature = dkim.sign(data, dkim_selector.encode("ascii"), dkim_domain.encode("ascii"), dkim_private_key,
                              canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=[h for h in DKIM_SIGNED_HEADERS if message[h.decode()] is not None])
        data = signature + data
    return data


_URL_RE = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Escape `text` and turn every http(s) URL in it into a clickable link."""
    out, last = [], 0
    for match in _URL_RE.finditer(text or ""):
        url = match.group(0).rstrip(".,;:)!?")
        end = match.start() + len(url)
        out.append(escape(text[last:match.start()]))
        out.append(Markup('<a href="{0}" rel="noopener noreferrer">{0}</a>').format(url))
        last = end
    out.append(escape((text or "")[last:]))
    return Markup("").join(out)


_HEAD_RE = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)


def mailbox_preview(html: str, images: tuple[InlineImage, ...] = ()) -> str:
    """An e-mail's HTML as the dev mailbox frames it: every link opens in a new tab (inside the
    frame it would land on pages that refuse to be framed, and the frame would go blank), and each
    inline image (cid:) shown from a data: URL, as a mail client shows the attached part."""
    for image in images:
        data_url = f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        html = html.replace(f'src="cid:{image.cid}"', f'src="{data_url}"')
    base = '<base target="_blank">'
    match = _HEAD_RE.search(html)
    if match:
        return html[:match.end()] + base + html[match.end():]
    return base + html

"""E-mail rendering (a standalone Jinja environment, pt-BR) and MIME assembly, plus the
text-to-HTML helper of the dev mailbox. Nothing here touches the database or the network."""
from __future__ import annotations

import base64
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr
from functools import lru_cache
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


# The message is built with the email package's MIME classes and serialised with compat32's
# header encoder (email.header) and CRLF line ends: the default policy's header objects and folder
# cost ~2.5 ms of CPU per e-mail, a quarter of the notifier's work in a burst, for the same message
# as a mail client reads it (test_wire_format). "From " at the start of a body line is the body's.
WIRE = email.policy.compat32.clone(linesep="\r\n", mangle_from_=False)
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # (this instance's: the registry's utf-8 stays base64)


def _text_part(text: str, subtype: str) -> Message:
    """UTF-8, quoted-printable: a relay has nothing to re-encode (which would break DKIM)."""
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, _UTF8_QP)
    return part


@lru_cache(maxsize=512)
def address_header(value: str, name: str) -> str:
    """An address header's value ("Display Name <addr>" as `from_shown` writes it) folded for the
    wire by the default policy, whose folder encodes only the display name's words that are not
    ASCII (compat32's would encode the whole name and cut a word between two encoded words).
    Cached: a firm's From and Reply-To are the same on each of its e-mails."""
    folded = email.policy.SMTP.header_factory(name, value).fold(policy=email.policy.SMTP)
    return folded[len(name) + 2:].removesuffix("\r\n").replace("\r\n", "\n")


def build_message(*, from_: str, to: str | None, subject: str, date: str, message_id: str, text: str,
                  html: str, reply_to: str | None = None,
                  images: tuple[InlineImage, ...] = ()) -> Message[str, str | Header]:
    """multipart/alternative (text, then HTML), quoted-printable so that no relay re-encodes
    the body (which would break a DKIM signature). With `images`, the HTML becomes
    multipart/related: the HTML, then each image inline under its Content-ID (RFC 2392), so that
    a mail client shows the logo without loading anything from the internet. `to` None: no To
    header (`international` adds one that is not ASCII). Serialise it with `message_bytes`."""
    html_part = _text_part(html, "html")
    if images:
        related = [html_part]
        for image in images:
            subtype = image.media_type.split("/", 1)[1]
            part = MIMEImage(image.data, subtype)
            part["Content-ID"] = f"<{image.cid}>"
            part.add_header("Content-Disposition", "inline",
                            filename=f"logo.{'jpg' if subtype == 'jpeg' else subtype}")
            related.append(part)
        html_part = MIMEMultipart("related", _subparts=related)
    message: Message[str, str | Header] = Message(policy=WIRE)
    message["From"] = address_header(from_, "From")
    if to is not None:
        message["To"] = to
    if reply_to:
        message["Reply-To"] = address_header(reply_to, "Reply-To")
    message["Subject"] = Header(subject, header_name="Subject")
    message["Date"] = date
    message["Message-ID"] = message_id
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = "multipart/alternative"
    message.attach(_text_part(text, "plain"))
    message.attach(html_part)
    return message


def international(data: bytes, to: str) -> EmailMessage:
    """The message of `data` (built with no To) with a To only SMTPUTF8 carries (an address that
    is not ASCII), for smtplib.send_message, which asks the server for SMTPUTF8 and writes it so."""
    message = email.message_from_bytes(data, policy=email.policy.SMTPUTF8)
    assert isinstance(message, EmailMessage)
    message["To"] = to
    return message


DKIM_SIGNED_HEADERS = (b"from", b"to", b"reply-to", b"subject", b"date", b"message-id", b"mime-version",
                       b"content-type")


def message_bytes(message: Message[str, str | Header], *, dkim_selector: str | None = None, dkim_domain: str | None = None,
                  dkim_private_key: bytes | None = None) -> bytes:
    """The message as sent over SMTP (CRLF line ends), DKIM-signed when a key is given."""
    data = message.as_bytes(policy=WIRE)
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

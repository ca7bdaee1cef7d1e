"""E-mail rendering (a standalone Jinja environment, pt-BR) and MIME assembly, plus the
text-to-HTML helper of the dev mailbox. Nothing here touches the database or the network."""
from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

EMAIL_TEMPLATES = Path(__file__).parent / "templates" / "emails"
TEMPLATES = ("invitation", "password_reset")

_env = Environment(loader=FileSystemLoader(str(EMAIL_TEMPLATES)),
                   autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
                   undefined=StrictUndefined, keep_trailing_newline=True)


def _one_line(value: str) -> str:
    """Header-safe: no CR/LF, collapsed whitespace."""
    return " ".join(str(value).split())


def subject_for(template: str, context: dict) -> str:
    if template == "invitation":
        return _one_line(f"{context['firm_name']} convidou você para o Portal do Cliente")
    if template == "password_reset":
        return "Redefinição de senha do Portal do Cliente"
    raise ValueError(f"unknown e-mail template {template!r}")


def render_email(template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of one e-mail. `context` includes the unsealed secrets."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown e-mail template {template!r}")
    values = {"expires_on": None, "name": "", **context}
    subject = subject_for(template, values)
    text = _env.get_template(f"{template}.txt").render(subject=subject, **values)
    html = _env.get_template(f"{template}.html").render(subject=subject, **values)
    return subject, text, html


def from_header(firm_name: str | None, mail_from: str) -> str:
    display = f"{_one_line(firm_name)} via Balcão" if firm_name else "Balcão"
    return formataddr((display, mail_from))


def build_message(*, from_: str, to: str, subject: str, date: str, message_id: str, text: str,
                  html: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = message_id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


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

"""What every service's HTTP input schemas share: control characters refused, and marshmallow's
errors turned into the {field: [pt-BR message, ...]} the form templates show.

`InputSchema` is the base class of every schema that loads a form, a query string or a path:
a string with a control character (C0, DEL or C1: NUL, ESC, tab, line breaks…) in any of its
declared fields is refused with one pt-BR message, before the schema's own hooks run (they may
strip or collapse whitespace and would hide it). Passwords (`PASSWORD_FIELDS`) may hold any
character but NUL. Nothing refused here ever reaches a database: PostgreSQL rejects NUL in text
with an error (a 500), and the other controls have no business in names, e-mails or documents.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError


def control_characters_message():
    """The pt-BR message of a refused field (lazy: translated when shown)."""
    return _l("Este campo contém caracteres de controle (invisíveis), que não são permitidos.")


def is_control_character(ch: str) -> bool:
    """C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F): Unicode's category Cc."""
    return unicodedata.category(ch) == "Cc"


def has_control_characters(value: str, *, password: bool = False) -> bool:
    """True when `value` holds a character a text field refuses (for a password: only NUL)."""
    if password:
        return "\x00" in value
    return any(is_control_character(ch) for ch in value)


def without_control_characters(value: str) -> str:
    """`value` with each control character shown as U+FFFD (what a preview may display and store)."""
    return "".join("\ufffd" if is_control_character(ch) else ch for ch in value)


def _strings(value) -> Iterable[str]:
    """Every string a submitted value carries: itself, a list's items, an upload's filename."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    else:
        filename = getattr(value, "filename", None)  # werkzeug's FileStorage
        if isinstance(filename, str):
            yield filename


def _submitted(data: Mapping, key: str) -> list:
    """All the values submitted under `key` (a MultiDict may carry several)."""
    getlist = getattr(data, "getlist", None)
    if callable(getlist):
        return list(getlist(key))
    return [data[key]] if key in data else []


class InputSchema(Schema):
    """Base of every HTTP input schema (see the module's docstring)."""

    PASSWORD_FIELDS: tuple[str, ...] = ()

    def control_character_errors(self, data) -> dict[str, list]:
        if not isinstance(data, Mapping):
            return {}
        errors: dict[str, list] = {}
        for name, field in self.load_fields.items():
            key = field.data_key or name
            password = name in self.PASSWORD_FIELDS
            if any(has_control_characters(s, password=password)
                   for value in _submitted(data, key) for s in _strings(value)):
                errors[key] = [control_characters_message()]
        return errors

    def load(self, data, *, many=None, partial=None, unknown=None):
        """Refuse control characters on the raw input first (a pre_load hook would run in name
        order, possibly after a subclass's hook that strips them), reporting the schema's other
        errors with them."""
        refused = self.control_character_errors(data) if not (many if many is not None else self.many) else {}
        if not refused:
            return super().load(data, many=many, partial=partial, unknown=unknown)
        other = {}
        try:
            super().load(data, many=many, partial=partial, unknown=unknown)
        except ValidationError as exc:
            other = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationError({**other, **refused})


def error_messages(exc: ValidationError, translate=str) -> dict[str, list[str]]:
    """marshmallow's errors as {field: [message, ...]}: nested errors (a list field's
    {0: [...]}, a nested schema's {...}) are flattened into their top-level field, each message
    once, in order. `translate` turns a message (a lazy string or a msgid) into the page's text."""
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return {str(field): _flatten(value, translate) for field, value in messages.items()}


def _flatten(value, translate) -> list[str]:
    out: list[str] = []

    def walk(item):
        if isinstance(item, Mapping):
            for sub in item.values():
                walk(sub)
        elif isinstance(item, list | tuple):
            for sub in item:
                walk(sub)
        else:
            text = translate(str(item))
            if text not in out:
                out.append(text)

    walk(value)
    return out

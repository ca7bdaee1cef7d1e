"""Marshmallow schemas of the documents service's HTTP input: the staff's forms (a document's
metadata as typed in pt-BR — competência MM/AAAA, vencimento dd/mm/aaaa, valor 1.234,56 —, a new
folder's name, a row of the Distribuir automaticamente review table, the audit log's page) and the
client's pages (the search's query string, the ids of Baixar selecionados, where Enviar documentos
ao escritório sends the files).

Messages are pt-BR msgids (N_): `load_form` translates them when the form is shown again.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import gettext
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from services.common.documents import N_
from services.common.forms import InputSchema, error_messages

from .models import GUIA_TIPOS

_COMPETENCIA = re.compile(r"(?P<month>\d{1,2})\s*/\s*(?P<year>\d{4})")
_DATE = re.compile(r"(?P<day>\d{1,2})/(?P<month>\d{1,2})/(?P<year>\d{4})")
# 1.234,56 — 1234,56 — 1234 — 0,5 (R$ in front allowed); never "1,234.56"
_VALOR = re.compile(r"(?:R\$\s*)?(?P<number>\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?|\d+(?:,\d{1,2})?)")
VALOR_MAX = Decimal("999999999999.99")  # Numeric(14, 2)
FOLDER_NAME_MAX = 120


def load_form(schema: Schema, data) -> tuple[dict | None, dict]:
    """(values, errors) for a schema; errors map a field to a list of pt-BR messages."""
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        return None, error_messages(exc, gettext)


def parse_competencia(value: str) -> str:
    match = _COMPETENCIA.fullmatch(value.strip())
    if not match or not 1 <= int(match["month"]) <= 12 or not 1990 <= int(match["year"]) <= 2100:
        raise ValidationError(N_("Informe a competência como MM/AAAA (por exemplo, 10/2026)."))
    return f"{int(match['month']):02d}/{match['year']}"


def parse_date(value: str) -> date:
    match = _DATE.fullmatch(value.strip())
    try:
        if not match:
            raise ValueError
        day = date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        raise ValidationError(N_("Informe a data como dd/mm/aaaa (por exemplo, 20/11/2026).")) from None
    if not 1990 <= day.year <= 2100:
        raise ValidationError(N_("Informe a data como dd/mm/aaaa (por exemplo, 20/11/2026)."))
    return day


def parse_valor(value: str) -> Decimal:
    match = _VALOR.fullmatch(value.strip())
    if not match:
        raise ValidationError(N_("Informe o valor como 1.234,56."))
    try:
        amount = Decimal(match["number"].replace(".", "").replace(",", "."))
    except InvalidOperation:
        raise ValidationError(N_("Informe o valor como 1.234,56.")) from None
    if amount > VALOR_MAX:
        raise ValidationError(N_("Valor alto demais."))
    return amount.quantize(Decimal("0.01"))


def format_valor(value: Decimal | None) -> str:
    """1.234,56 (what the forms show back and the pages print)."""
    if value is None:
        return ""
    whole, cents = f"{value:,.2f}".split(".")
    return f"{whole.replace(',', '.')},{cents}"


class _Competencia(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return parse_competencia(super()._deserialize(value, attr, data, **kwargs))


class _Date(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return parse_date(super()._deserialize(value, attr, data, **kwargs))


class _Valor(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return parse_valor(super()._deserialize(value, attr, data, **kwargs))


def _blank_to_missing(data, keys) -> dict:
    """A form's empty text fields are "not given"."""
    out = {}
    for key, value in (data.items() if hasattr(data, "items") else []):
        if key in keys and isinstance(value, str) and not value.strip():
            continue
        out[key] = value
    return out


class MetadataSchema(InputSchema):
    """Publicar documentos: the optional metadata given to every file of one upload. A guia's
    vencimento and valor need its tipo (a document with a tipo is a guia)."""

    class Meta:
        unknown = EXCLUDE

    FIELDS: tuple[str, ...] = ("competencia", "tipo", "vencimento", "valor")

    competencia = _Competencia(load_default=None)
    tipo = fields.String(load_default=None, data_key="tipo", attribute="guia_tipo",
                         validate=validate.OneOf(GUIA_TIPOS, error=N_("Escolha um tipo de guia da lista.")))
    vencimento = _Date(load_default=None)
    valor = _Valor(load_default=None)

    @pre_load
    def _blanks(self, data, **_kw):
        return _blank_to_missing(data, self.FIELDS)

    @post_load
    def _guia_needs_tipo(self, data, **_kw):
        if data.get("guia_tipo") is None and (data.get("vencimento") or data.get("valor") is not None):
            raise ValidationError({"tipo": [N_("Vencimento e valor são de uma guia: escolha o tipo da guia.")]})
        return data


class PublishSchema(MetadataSchema):
    """Publicar documentos: the metadata, the subfolder (none: the company × department itself),
    and whether files equal to one already in the folder are published anyway."""

    pasta = fields.UUID(load_default=None, error_messages={"invalid_uuid": N_("Pasta inválida.")})
    repetidos = fields.Boolean(load_default=False, truthy={"1", "on", "sim"}, falsy={"", "0", "off", "nao"})

    FIELDS = (*MetadataSchema.FIELDS, "pasta")


def _folder_name(value: str) -> None:
    if "/" in value or "\\" in value or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise ValidationError(N_("O nome da pasta não pode conter “/” nem “\\”."))
    if value in (".", ".."):
        raise ValidationError(N_("Escolha outro nome para a pasta."))


class FolderSchema(InputSchema):
    """Nova pasta: its name, inside the company × department or one of its subfolders."""

    class Meta:
        unknown = EXCLUDE

    nome = fields.String(required=True, attribute="name",
                         validate=[validate.Length(min=1, max=FOLDER_NAME_MAX,
                                                   error=N_("O nome da pasta deve ter de 1 a 120 caracteres.")),
                                   _folder_name],
                         error_messages={"required": N_("Informe o nome da pasta.")})
    pasta = fields.UUID(load_default=None, error_messages={"invalid_uuid": N_("Pasta inválida.")})

    @pre_load
    def _tidy(self, data, **_kw):
        data = _blank_to_missing(data, ("nome", "pasta"))
        if isinstance(data.get("nome"), str):
            data["nome"] = " ".join(unicodedata.normalize("NFC", data["nome"]).split())
            if not data["nome"]:
                del data["nome"]
        return data


class ReviewRowSchema(MetadataSchema):
    """One row of the Distribuir automaticamente review: where the file goes and its metadata
    (company and department required for a row that is published)."""

    empresa = fields.UUID(required=True, attribute="company_id",
                          error_messages={"required": N_("Escolha a empresa."), "invalid_uuid": N_("Escolha a empresa.")})
    departamento = fields.UUID(required=True, attribute="department_id",
                               error_messages={"required": N_("Escolha o departamento."),
                                               "invalid_uuid": N_("Escolha o departamento.")})

    FIELDS = (*MetadataSchema.FIELDS, "empresa", "departamento")


class AuditQuerySchema(InputSchema):
    """GET …/auditoria?pagina=N."""

    class Meta:
        unknown = EXCLUDE

    pagina = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000, error=N_("Página inválida.")),
                            error_messages={"invalid": N_("Página inválida.")})


# --------------------------------------------------------------------------- the client's pages

class SearchQuerySchema(InputSchema):
    """GET …/busca: q (a part of the name), empresa, departamento, competencia (MM/AAAA), tipo, pagina.
    Blank values are absent ones. Whether empresa and departamento are the person's is the view's
    check (against their Access)."""

    class Meta:
        unknown = EXCLUDE

    q = fields.String(load_default="", validate=validate.Length(max=200, error=N_("Texto muito longo.")))
    empresa = fields.UUID(load_default=None, error_messages={"invalid_uuid": N_("Escolha uma empresa da lista.")})
    departamento = fields.UUID(load_default=None,
                               error_messages={"invalid_uuid": N_("Escolha um departamento da lista.")})
    competencia = _Competencia(load_default=None)
    tipo = fields.String(load_default=None, validate=validate.OneOf(GUIA_TIPOS, error=N_("Escolha um tipo da lista.")))
    pagina = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10000, error=N_("Página inválida.")),
                            error_messages={"invalid": N_("Página inválida.")})

    @pre_load
    def _blank(self, data, **_kw):
        data = {k: v for k, v in dict(data).items() if v not in ("", None)}
        for key in ("q", "competencia"):
            if key in data:
                data[key] = str(data[key]).strip()
                if not data[key]:
                    del data[key]
        return data


MAX_SELECTED = 200


class SelectionSchema(InputSchema):
    """POST …/baixar-selecionados: the ticked documents' ids."""

    class Meta:
        unknown = EXCLUDE

    ids = fields.List(fields.UUID(error_messages={"invalid_uuid": N_("Seleção inválida.")}), required=True,
                      validate=validate.Length(min=1, max=MAX_SELECTED,
                                               error=N_("Selecione de 1 a 200 documentos.")),
                      error_messages={"required": N_("Selecione ao menos um documento.")})

    @pre_load
    def _list(self, data, **_kw):
        getlist = getattr(data, "getlist", None)
        ids = [v for v in (getlist("ids") if callable(getlist) else data.get("ids") or []) if v]
        return {"ids": ids} if ids else {}


class SendSchema(InputSchema):
    """POST …/enviar: the company × department ("<company id>:<department id>") the files go to."""

    class Meta:
        unknown = EXCLUDE

    destino = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9a-fA-F-]{36}:[0-9a-fA-F-]{36}$", error=N_("Escolha a empresa e o departamento.")),
        error_messages={"required": N_("Escolha a empresa e o departamento.")})

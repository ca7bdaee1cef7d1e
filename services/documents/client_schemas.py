"""Marshmallow schemas of the client's pages of Documentos: the search's query string, the ids of
Baixar selecionados, and where Enviar documentos ao escritório sends the files. Messages are pt-BR
msgids (N_), translated when the page shows them (`load`)."""
from __future__ import annotations

import re

from flask_babel import gettext
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from services.common.documents import N_
from services.common.forms import InputSchema, error_messages

from .models import GUIA_TIPOS

COMPETENCIA = re.compile(r"^(0[1-9]|1[0-2])/(\d{4})$")


def _competencia(value: str) -> None:
    match = COMPETENCIA.match(value)
    if not match or not 1900 <= int(match.group(2)) <= 2999:
        raise ValidationError(N_("Informe a competência como MM/AAAA (por exemplo, 10/2026)."))


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
    competencia = fields.String(load_default=None, validate=_competencia)
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


def load(schema: Schema, data) -> tuple[dict | None, dict[str, list[str]]]:
    """(values, errors): errors map a field to its pt-BR messages, translated."""
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        return None, error_messages(exc, gettext)

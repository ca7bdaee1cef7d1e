"""Marshmallow schemas for every HTTP input of the users service, and the document validators
(CPF, CNPJ, Brazilian phone numbers) the service functions share."""
from __future__ import annotations

import re

import phonenumbers
from flask_babel import gettext
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf
from stdnum.exceptions import ValidationError as StdnumError

from services.common.contracts import normalize_email
from services.common.documents import clean_cnpj
from services.common.events import ACCESS_LEVELS, CLIENT_PERMISSIONS, NOTIFICATION_CHANNELS, NOTIFICATION_KINDS
from services.common.forms import InputSchema, error_messages

from .models import AUDIT_ACTIONS
from .queries import STATE_FILTERS


def N_(message: str) -> str:
    """Marks a pt-BR msgid for extraction; `load_form` translates it when the form is shown."""
    return message


def clean_cpf(value: str | None) -> str | None:
    """Digits of a valid CPF, None when empty; ValidationError "CPF inválido." otherwise."""
    if value is None or not str(value).strip():
        return None
    try:
        digits = stdnum_cpf.validate(str(value))
    except StdnumError:
        raise ValidationError(N_("CPF inválido.")) from None
    if len(set(digits)) == 1:  # 111.111.111-11 and the like pass the check digits; the Receita refuses them
        raise ValidationError(N_("CPF inválido."))
    return digits


def compact_document(value: str | None) -> str:
    """A typed CNPJ or CPF without its punctuation and spaces, uppercase (what is stored and compared)."""
    return re.sub(r"[\s./-]", "", str(value or "")).upper()


def clean_document(value: str | None) -> tuple[str, str]:
    """(kind, value) of a company's document: ("cnpj", 14 characters, as clean_cnpj) or ("cpf",
    11 digits, as clean_cpf) — a person may be a client company (produtor rural, autônomo).
    Told apart by length once the punctuation is gone; ValidationError with a pt-BR message."""
    compact = compact_document(value)
    if not compact:
        raise ValidationError(N_("Informe o CNPJ ou o CPF."))
    if len(compact) == 11 and compact.isdigit():
        cpf = clean_cpf(compact)
        assert cpf is not None
        return "cpf", cpf
    if len(compact) == 14:
        return "cnpj", clean_cnpj(compact)
    raise ValidationError(N_("Informe um CNPJ (14 caracteres) ou um CPF (11 dígitos)."))


def format_document(kind: str | None, value: str | None) -> str:
    """12.ABC.345/01DE-35 or 123.456.789-09 (empty for no document)."""
    if not value:
        return ""
    # a stored document (uppercase, no punctuation) is cut in place: the lists format one per row
    if kind == "cnpj" and len(value) == 14 and value.isalnum():
        return f"{value[:2]}.{value[2:5]}.{value[5:8]}/{value[8:12]}-{value[12:]}"
    if kind != "cnpj" and len(value) == 11 and value.isdigit():
        return f"{value[:3]}.{value[3:6]}.{value[6:9]}-{value[9:]}"
    return stdnum_cnpj.format(value) if kind == "cnpj" else stdnum_cpf.format(value)


def clean_phone(value: str | None) -> str | None:
    """E.164 of a valid Brazilian phone number, None when empty."""
    if value is None or not str(value).strip():
        return None
    try:
        number = phonenumbers.parse(str(value), "BR")
    except phonenumbers.NumberParseException:
        raise ValidationError(N_("Telefone inválido.")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(N_("Telefone inválido."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str | None) -> str:
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, "BR")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def format_cpf(digits: str | None) -> str:
    return stdnum_cpf.format(digits) if digits else ""


def _full_name(value: str) -> None:
    if len(value.split()) < 2:
        raise ValidationError(N_("Informe nome e sobrenome."))


def tidy_text(data, keys, *, squeezed=("name",)) -> dict:
    """A form's text fields as typed → stripped (runs of spaces squeezed in `squeezed`); blank → None."""
    data = dict(data)
    for key in keys:
        value = data.get(key)
        if isinstance(value, str):
            value = " ".join(value.split()) if key in squeezed else value.strip()
            data[key] = value or None
    return data


class ClientUserSchema(InputSchema):
    """Novo Usuário / Editar: Nome, CPF, Telefone, E-mail de contato (+ access and companies)."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=[validate.Length(max=200, error=N_("Nome muito longo.")),
                                                  _full_name],
                         error_messages={"required": N_("Informe nome e sobrenome."),
                                         "null": N_("Informe nome e sobrenome.")})
    cpf = fields.String(load_default=None, allow_none=True, validate=clean_cpf)
    phone = fields.String(load_default=None, allow_none=True, validate=clean_phone)
    email = fields.Email(required=True, validate=validate.Length(max=320, error=N_("E-mail inválido.")),
                         error_messages={"required": N_("Informe o e-mail de contato."),
                                         "null": N_("Informe o e-mail de contato."),
                                         "invalid": N_("E-mail inválido.")})
    access = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(["now", "later"], error=N_("Escolha inválida.")))
    company_ids = fields.List(fields.UUID(error_messages={"invalid_uuid": N_("Empresa inválida.")}),
                              load_default=list)

    @pre_load
    def _strip(self, data, **_kw):
        return tidy_text(data, ("name", "cpf", "phone", "email", "access"))

    @post_load
    def _normalize(self, data, **_kw):
        data["cpf"] = clean_cpf(data.get("cpf"))
        data["phone"] = clean_phone(data.get("phone"))
        data["email"] = normalize_email(data["email"])
        return data


def _at_least_one_department(value) -> None:
    if not value:
        raise ValidationError(N_("Escolha ao menos um departamento."))


class ClientUserAccessSchema(InputSchema):
    """Novo Usuário's Departamentos, Empresas, Permissões and Notificações steps (and Editar's
    sections), as the view gathers them from the form: `departments` {department id: level} of
    the ticked departments, `company_ids`, `permissions` (the ticked ones), `notifications`
    {kind: channel}. A key left out (a step not reached yet) loads as None: the defaults."""

    class Meta:
        unknown = EXCLUDE

    departments = fields.Dict(
        keys=fields.UUID(error_messages={"invalid_uuid": N_("Departamento inválido.")}),
        values=fields.String(validate=validate.OneOf(ACCESS_LEVELS, error=N_("Nível de acesso inválido."))),
        load_default=None, allow_none=True, validate=_at_least_one_department)
    company_ids = fields.List(fields.UUID(error_messages={"invalid_uuid": N_("Empresa inválida.")}),
                              load_default=list)
    permissions = fields.List(fields.String(validate=validate.OneOf(CLIENT_PERMISSIONS,
                                                                     error=N_("Permissão inválida."))),
                              load_default=None, allow_none=True)
    notifications = fields.Dict(
        keys=fields.String(validate=validate.OneOf(NOTIFICATION_KINDS, error=N_("Escolha inválida."))),
        values=fields.String(validate=validate.OneOf(NOTIFICATION_CHANNELS, error=N_("Escolha inválida."))),
        load_default=dict)


class PageQuerySchema(InputSchema):
    """Query string of a paged page: `pagina`; blank values are absent ones."""

    class Meta:
        unknown = EXCLUDE

    pagina = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))

    @pre_load
    def _blank(self, data, **_kw):
        data = {k: v for k, v in dict(data).items() if v not in ("", None)}
        if "q" in data:
            data["q"] = str(data["q"]).strip()
        return data


class SearchQuerySchema(PageQuerySchema):
    """A paged list with a search box (`q`, stripped)."""

    q = fields.String(load_default="", validate=validate.Length(max=200, error=N_("Texto muito longo.")))


class ListQuerySchema(SearchQuerySchema):
    """Query string of the client users list: search, deleted toggle, invitation state (a key of
    queries.STATE_FILTERS: the staff home's counts link here), page."""

    excluidos = fields.Boolean(load_default=False)
    estado = fields.String(load_default=None, validate=validate.OneOf(
        list(STATE_FILTERS), error=N_("Situação desconhecida.")))


def _valid_document(value: str) -> None:
    clean_document(value)


class CompanySchema(InputSchema):
    """Nova empresa / Editar empresa, and each row of the companies import: Razão social, Nome
    fantasia (optional), CNPJ ou CPF, Código interno (optional). Loads `document` normalized
    (uppercase, no punctuation) with its `document_kind` ("cnpj" | "cpf")."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(max=200, error=N_("Razão social muito longa.")),
                         error_messages={"required": N_("Informe a razão social."),
                                         "null": N_("Informe a razão social.")})
    trade_name = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(max=200, error=N_("Nome fantasia muito longo.")))
    document = fields.String(required=True, validate=_valid_document,
                             error_messages={"required": N_("Informe o CNPJ ou o CPF."),
                                             "null": N_("Informe o CNPJ ou o CPF.")})
    code = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=30, error=N_("Código muito longo (até 30 caracteres).")))

    @pre_load
    def _strip(self, data, **_kw):
        keys = ("name", "trade_name", "document", "code")
        return tidy_text(data, keys, squeezed=keys)

    @post_load
    def _normalize(self, data, **_kw):
        data["document_kind"], data["document"] = clean_document(data["document"])
        return data


COMPANY_STATUSES = ("ativas", "inativas", "todas")


class CompanyListQuerySchema(SearchQuerySchema):
    """Query string of the Empresas list: search, Situação (ativas / inativas / todas), page."""

    situacao = fields.String(load_default="ativas", validate=validate.OneOf(COMPANY_STATUSES,
                                                                            error=N_("Escolha inválida.")))


class FirmChoiceSchema(InputSchema):
    class Meta:
        unknown = EXCLUDE

    escritorio = fields.String(required=True, validate=validate.Length(min=1, max=80))


def load_form(schema: Schema, data) -> tuple[dict | None, dict]:
    """(values, errors) for a schema; errors map a field to a list of pt-BR messages."""
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        return None, error_messages(exc, gettext)


class ImportUploadSchema(InputSchema):
    """Importar usuários: the uploaded file (CSV or XLSX)."""

    class Meta:
        unknown = EXCLUDE

    arquivo = fields.Raw(required=True, error_messages={"required": N_("Escolha um arquivo CSV ou XLSX."),
                                                         "null": N_("Escolha um arquivo CSV ou XLSX.")})

    @pre_load
    def _no_empty_file(self, data, **_kw):
        data = dict(data)
        if not getattr(data.get("arquivo"), "filename", None):
            data.pop("arquivo", None)
        return data


AUDIT_ACTION_CHOICES = AUDIT_ACTIONS  # every action the log may hold is a filter choice


class AuditQuerySchema(InputSchema):
    """Configurações › Auditoria filters: Ação, Quem fez, Usuário afetado, De, Até, page."""

    class Meta:
        unknown = EXCLUDE

    acao = fields.String(load_default=None, validate=validate.OneOf(AUDIT_ACTION_CHOICES,
                                                                    error=N_("Escolha inválida.")))
    autor = fields.String(load_default="", validate=validate.Length(max=200, error=N_("Texto muito longo.")))
    alvo = fields.String(load_default="", validate=validate.Length(max=200, error=N_("Texto muito longo.")))
    de = fields.Date(load_default=None, error_messages={"invalid": N_("Data inválida.")})
    ate = fields.Date(load_default=None, error_messages={"invalid": N_("Data inválida.")})
    pagina = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))

    @pre_load
    def _blank(self, data, **_kw):
        data = {k: str(v).strip() for k, v in dict(data).items() if v not in ("", None)}
        return {k: v for k, v in data.items() if v != ""}

    @post_load
    def _order(self, data, **_kw):
        if data["de"] and data["ate"] and data["ate"] < data["de"]:
            raise ValidationError({"ate": [N_("A data final é anterior à inicial.")]})
        return data


class SecuritySettingsSchema(InputSchema):
    """Configurações › Segurança: the staff MFA checkbox (absent when unchecked)."""

    class Meta:
        unknown = EXCLUDE

    exigir_mfa = fields.Boolean(load_default=False)


class StaffEditSchema(InputSchema):
    """Configurações › Equipe › Editar: Papel, Departamentos, Carteira."""

    class Meta:
        unknown = EXCLUDE

    role = fields.String(required=True, validate=validate.OneOf(["admin", "staff"], error=N_(
        "Escolha o papel: Administrador ou Colaborador.")), error_messages={
        "required": N_("Escolha o papel: Administrador ou Colaborador.")})
    department_ids = fields.List(fields.UUID(error_messages={"invalid_uuid": N_("Departamento inválido.")}),
                                 load_default=list)
    company_ids = fields.List(fields.UUID(error_messages={"invalid_uuid": N_("Empresa inválida.")}),
                              load_default=list)


class StaffInviteSchema(StaffEditSchema):
    """Configurações › Equipe › Convidar colaborador: Nome, E-mail, and what Editar has."""

    name = fields.String(required=True, validate=[validate.Length(max=200, error=N_("Nome muito longo.")),
                                                  _full_name],
                         error_messages={"required": N_("Informe nome e sobrenome."),
                                         "null": N_("Informe nome e sobrenome.")})
    email = fields.Email(required=True, validate=validate.Length(max=320, error=N_("E-mail inválido.")),
                         error_messages={"required": N_("Informe o e-mail."), "null": N_("Informe o e-mail."),
                                         "invalid": N_("E-mail inválido.")})

    @pre_load
    def _strip(self, data, **_kw):
        return tidy_text(data, ("name", "email"))

    @post_load
    def _normalize(self, data, **_kw):
        data["email"] = normalize_email(data["email"])
        return data


class DepartmentSchema(InputSchema):
    """Configurações › Departamentos: a new name, or a department's new name."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=80, error=N_(
        "Informe um nome de até 80 caracteres.")), error_messages={"required": N_("Informe o nome do departamento.")})


class DepartmentRemovalSchema(InputSchema):
    """Migrar e excluir: the department that receives what the removed one holds."""

    class Meta:
        unknown = EXCLUDE

    move_to = fields.UUID(required=True, error_messages={
        "required": N_("Escolha o departamento que recebe o que este contém."),
        "invalid_uuid": N_("Escolha o departamento que recebe o que este contém.")})



class FirmProfileSchema(InputSchema):
    """Configurações › Escritório: Nome de exibição, Logo (a file; checked by users.logos), Remover
    o logo, Responder para (Reply-To, optional)."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(max=200, error=N_(
        "Nome de exibição muito longo (até 200 caracteres).")), error_messages={
        "required": N_("Informe o nome de exibição do escritório."),
        "null": N_("Informe o nome de exibição do escritório.")})
    reply_to = fields.Email(load_default=None, allow_none=True,
                            validate=validate.Length(max=320, error=N_("E-mail inválido.")),
                            error_messages={"invalid": N_("Informe um e-mail válido para as respostas, "
                                                          "ou deixe o campo em branco.")})
    logo = fields.Raw(load_default=None, allow_none=True)
    remove_logo = fields.Boolean(load_default=False)

    @pre_load
    def _strip(self, data, **_kw):
        data = tidy_text(data, ("name", "reply_to"))
        if not getattr(data.get("logo"), "filename", None):  # no file chosen
            data.pop("logo", None)
        return data

    @post_load
    def _normalize(self, data, **_kw):
        data["reply_to"] = normalize_email(data["reply_to"]) or None
        return data

"""marshmallow schemas for every HTTP input of the auth service (pt-BR messages)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from services.common.contracts import normalize_email, safe_next
from services.common.documents import clean_cnpj
from services.common.forms import InputSchema, error_messages


def _required(**kw):
    return {"required": _l("Preencha este campo."), "null": _l("Preencha este campo."), **kw}


def _text(max_len: int, **kw):
    return fields.String(required=True, error_messages=_required(),
                         validate=[validate.Length(min=1, error=_l("Preencha este campo.")),
                                   validate.Length(max=max_len, error=_l("Texto longo demais."))], **kw)


def _password():
    # Long enough to let the policy say "no more than 128"; short enough to stop hashing abuse.
    return fields.String(required=True, error_messages=_required(),
                         validate=validate.Length(min=1, max=1024, error=_l("Informe a senha.")))


class FormSchema(InputSchema):
    """Form posts carry csrf_token and buttons: unknown fields are dropped. Text (not passwords)
    is stripped of surrounding spaces; control characters are refused (InputSchema)."""

    class Meta:
        unknown = EXCLUDE

    PASSWORD_FIELDS: tuple[str, ...] = ("password", "password_confirmation")

    @pre_load
    def _strip(self, data, **_kw):
        return {k: (v.strip() if isinstance(v, str) and k not in self.PASSWORD_FIELDS else v)
                for k, v in data.items()}


class NextMixin(Schema):
    next = fields.String(load_default=None)

    @post_load
    def _safe_next(self, data, **_kw):
        data["next"] = safe_next(data.get("next"))
        return data


class LoginSchema(FormSchema, NextMixin):
    email = _text(320)
    password = _password()


class LogoutSchema(FormSchema, NextMixin):
    pass


class ForgotPasswordSchema(FormSchema, NextMixin):
    email = fields.String(required=True, error_messages=_required(),
                          validate=[validate.Length(min=1, max=320, error=_l("Preencha este campo.")),
                                    validate.Email(error=_l("Informe um e-mail válido."))])


class _Cnpj(fields.String):
    """A CNPJ as typed (numeric or alphanumeric, any case, with or without punctuation), loaded as
    its 14 characters (services.common.documents.clean_cnpj)."""

    def _deserialize(self, value, attr, data, **kwargs):
        typed = super()._deserialize(value, attr, data, **kwargs)
        if not typed.strip():
            raise ValidationError(_l("Preencha este campo."))
        return clean_cnpj(typed)


class FirmSignupSchema(FormSchema):
    """Cadastre seu escritório: Razão social, CNPJ, the admin's Nome, E-mail, Senha (twice)."""
    legal_name = _text(200)
    cnpj = _Cnpj(required=True, error_messages=_required())
    admin_name = _text(200)
    email = fields.String(required=True, error_messages=_required(),
                          validate=[validate.Length(min=1, error=_l("Preencha este campo.")),
                                    validate.Length(max=320, error=_l("Texto longo demais.")),
                                    validate.Email(error=_l("Informe um e-mail válido."))])
    password = _password()
    password_confirmation = _password()

    @post_load
    def _normalize(self, data, **_kw):
        data["email"] = normalize_email(data["email"])
        return data


class SignupConfirmSchema(FormSchema):
    """The confirmation's form: nothing for a new login; the login's own Senha otherwise."""
    password = fields.String(load_default=None, validate=validate.Length(min=1, max=1024,
                                                                         error=_l("Informe a senha.")))


class TicketSchema(FormSchema):
    ticket = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class InvitationRegisterSchema(TicketSchema):
    name = _text(200)
    password = _password()
    password_confirmation = _password()


class InvitationLinkSchema(TicketSchema):
    password = _password()


class InvitationCodeSchema(TicketSchema):
    """The one-time code e-mailed to the invitee who opened a copy link."""
    code = fields.String(required=True, error_messages=_required(),
                         validate=[validate.Length(min=1, error=_l("Preencha este campo.")),
                                   validate.Length(max=20, error=_l("Código inválido."))])


class ResetPasswordSchema(FormSchema):
    password = _password()
    password_confirmation = _password()


class TicketClaims(Schema):
    """The claims of a verified invitation ticket (signed by invitations)."""

    class Meta:
        unknown = EXCLUDE

    inv = fields.UUID(required=True)
    email = fields.Email(required=True)
    name = fields.String(required=True, validate=validate.Length(max=200))
    firm = fields.String(required=True, validate=validate.Length(min=1, max=500))
    firm_slug = fields.String(required=True, validate=validate.Length(min=1, max=200))
    # Which link was opened: "email" (came through the person's inbox) or "copy" (the link staff
    # copy). A ticket that does not say counts as "copy": it must first prove the e-mail.
    via = fields.String(load_default="copy", validate=validate.OneOf(["email", "copy"]))
    # A client user's invitation, or ("staff_member") one to the firm's team: then the firm's staff
    # MFA policy (`firm_id`) applies before any session opens. Older tickets say neither: a client's.
    subject = fields.String(load_default="client_user", validate=validate.OneOf(["client_user", "staff_member"]))
    firm_id = fields.UUID(load_default=None)

    @post_load
    def _normalize(self, data, **_kw):
        data["email"] = normalize_email(data["email"])
        return data


def joining_staff_of(claims: dict):
    """The firm whose team a ticket's invitation joins (its staff MFA policy applies), or None."""
    return claims.get("firm_id") if claims.get("subject") == "staff_member" else None


def load_ticket_claims(claims: dict | None) -> dict | None:
    """Validated ticket claims, or None when they are missing something."""
    if not claims:
        return None
    try:
        return TicketClaims().load(claims)
    except ValidationError:
        return None


def form_errors(exc: ValidationError) -> dict[str, list[str]]:
    """marshmallow errors as {field: [pt-BR message, ...]} for the form macros."""
    return error_messages(exc)


class ChangePasswordSchema(FormSchema):
    PASSWORD_FIELDS = ("current_password", "password", "password_confirmation")
    current_password = _password()
    password = _password()
    password_confirmation = _password()


class PasswordConfirmSchema(FormSchema):
    password = _password()


class CodeSchema(FormSchema):
    code = fields.String(required=True, error_messages=_required(),
                         validate=[validate.Length(min=1, error=_l("Preencha este campo.")),
                                   validate.Length(max=40, error=_l("Código inválido."))])

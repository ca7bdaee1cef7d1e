"""The event catalogue: every message on the broker, its payload schema, who produces it and
who consumes it, and the context each e-mail template needs.

Event names are past tense. Payloads never carry a password, a password hash or a raw
token; a value only the notifier may read (an invitation or reset link) travels sealed
to the notifier's key (see `keys.seal`).

How events evolve without dead letters (services are deployed one at a time):
  * Producers validate strictly (`make_envelope`: an unknown payload field is a bug).
    Consumers ignore what they do not know (`parse_envelope`: unknown envelope and payload
    fields are dropped), so a producer may ADD an optional field before its consumers know it.
  * `version` is MAJOR or "MAJOR.MINOR". A minor bump means "only optional fields were added":
    every consumer of that major handles it. A consumer accepts every major up to its own (its
    schema must still read the older payloads); a major NEWER than its own is a change it cannot
    read — deploy the consumers first — and is dead-lettered with that reason (replayable with
    `balcao dead-letters replay` once the consumer is upgraded).
  * An e-mail template's context has a schema (`EMAIL_CONTEXTS`): checked, strictly, where
    `notification.email_requested` is recorded, and leniently (a missing key is an error, an
    unknown key is ignored) where the notifier renders.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

EXCHANGE = "balcao.events"
DEAD_LETTER_EXCHANGE = "balcao.dead"
DEAD_LETTER_QUEUE = "balcao.dead_letters"


class Payload(Schema):
    class Meta:
        unknown = RAISE


@functools.cache
def schema_instance(schema_cls: type[Schema], unknown: Literal["exclude", "include", "raise"] = RAISE) -> Schema:
    """One instance per schema and `unknown` rule, made once per process: building a marshmallow
    schema deep-copies its declared fields (a third of a consumer's validation time), while
    `load`/`dump`/`validate` keep no state on the instance (marshmallow 4 has no context), so every
    message and thread can share it."""
    return schema_cls(unknown=unknown)


UUID = lambda **kw: fields.UUID(required=True, **kw)  # noqa: E731
Text = lambda **kw: fields.String(required=True, validate=validate.Length(min=1, max=500), **kw)  # noqa: E731
Email = lambda **kw: fields.Email(required=True, **kw)  # noqa: E731


# --------------------------------------------------------------------------- e-mail templates

class EmailContext(Schema):
    """The non-secret values an e-mail template renders (all strings, as they travel)."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(max=500))


class InvitationContext(EmailContext):
    firm_name = Text()
    expires_on = fields.String(required=True, validate=validate.Regexp(r"^\d{2}/\d{2}/\d{4}$"))  # dd/mm/aaaa
    # who is invited: a client user of the firm ("client", the default: what every invitation was
    # before staff invitations) or a member of its team ("staff": "convidou você para a equipe")
    invitee = fields.String(load_default="client", validate=validate.OneOf(["client", "staff"]))


class InvitationCodeContext(EmailContext):
    firm_name = Text()


class PasswordResetContext(EmailContext):
    pass


class AccountLockedContext(EmailContext):
    locked_until = fields.AwareDateTime(required=True)
    # "account": nobody can sign in until then; "client": only the device/address the wrong
    # passwords came from is held back (the owner's own devices still get in)
    scope = fields.String(load_default="account", validate=validate.OneOf(["account", "client"]))


class PasswordChangedContext(EmailContext):
    changed_at = fields.AwareDateTime(required=True)


class MfaChangedContext(EmailContext):
    change = fields.String(required=True, validate=validate.OneOf(["enabled", "disabled",
                                                                   "recovery_codes_regenerated"]))


class FirmLinkedContext(EmailContext):
    firm_name = Text()
    linked_at = fields.AwareDateTime(required=True)


class FirmSignupContext(EmailContext):
    """The e-mail that confirms a self-service sign-up (Cadastre seu escritório). Only the CNPJ
    (checked: digits and letters) names what is being signed up: the firm does not exist yet, and
    what a stranger typed as Razão social or Nome never goes into an e-mail to an address they
    chose (nor into the From name: there is deliberately no `firm_name`). The confirmation page,
    opened from the e-mail, shows the rest. `name` is sent empty ("Olá!")."""
    cnpj = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-[0-9]{2}$"))  # 12.ABC.345/01DE-35
    expires_in_hours = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{1,3}$"))


class DocumentsPublishedContext(EmailContext):
    """One e-mail listing the documents published for a person within the digest window (the
    documents service's digest; "300 guias must never be 300 e-mails"). The list itself travels
    sealed (SealedDocumentList): file names never cross the broker in the clear."""
    firm_name = Text()
    count = fields.String(required=True, validate=validate.Regexp(r"^[1-9][0-9]{0,5}$"))


class DocumentsDueContext(DocumentsPublishedContext):
    """Guias a vencer: the unopened guias whose vencimento is near, one e-mail per person."""
    days = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{1,3}$"))  # the firm's N


class SealedLink(Schema):
    """What every template gets sealed (only the notifier reads it): the link of its button."""

    class Meta:
        unknown = EXCLUDE

    link = fields.Url(required=True, require_tld=False)


class SealedCode(Schema):
    """What `invitation_code` gets sealed: the one-time code proving the invited e-mail (no link)."""

    class Meta:
        unknown = EXCLUDE

    code = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))


class SealedDocumentList(SealedLink):
    """What the documents e-mails get sealed: the link to the firm's Documentos, and the list of
    documents (one per line: "Nome do arquivo — Empresa" or, for a guia, "… — vence em dd/mm/aaaa")."""

    documents = fields.String(required=True, validate=validate.Length(min=1, max=200_000))


# template (services/notifier/templates/emails/<name>.{txt,html}) -> its context schema
EMAIL_CONTEXTS: dict[str, type[EmailContext]] = {
    "invitation": InvitationContext,
    "invitation_code": InvitationCodeContext,
    "password_reset": PasswordResetContext,
    "account_locked": AccountLockedContext,
    "password_changed": PasswordChangedContext,
    "mfa_changed": MfaChangedContext,
    "firm_linked": FirmLinkedContext,
    "firm_signup": FirmSignupContext,
    "documents_published": DocumentsPublishedContext,
    "documents_due": DocumentsDueContext,
}
EMAIL_TEMPLATES = list(EMAIL_CONTEXTS)
# template -> the schema of what it gets sealed (a link, but the invitation code's e-mail has a code)
EMAIL_SEALED: dict[str, type[Schema]] = {template: SealedLink for template in EMAIL_CONTEXTS} | {
    "invitation_code": SealedCode, "documents_published": SealedDocumentList, "documents_due": SealedDocumentList}


def validate_email_context(template: str, context: dict, *,
                           unknown: Literal["exclude", "include", "raise"] = RAISE) -> None:
    """Raise ValidationError({"context": ...}) unless `context` fits the template's schema."""
    schema_cls = EMAIL_CONTEXTS.get(template)
    if schema_cls is None:
        raise ValidationError({"template": [f"unknown e-mail template {template!r}"]})
    errors = schema_instance(schema_cls, unknown).validate(context if isinstance(context, dict) else {})
    if errors:
        raise ValidationError({"context": errors})


# Whom an invitation is for. The invitation events were first written for client users only: their
# `client_user_id` field is the id of the invitation's *subject*, and `subject` (added in minor 1,
# optional) says what that id names — a client user (the default, what an older producer means) or a
# staff member of the firm's team. An older consumer drops `subject` and reads the id as a client
# user's: it finds no such client user and does nothing (deploy the consumers first).
SUBJECTS = ("client_user", "staff_member")


def Subject():  # noqa: N802  (a field factory, like UUID/Text/Email above)
    return fields.String(load_default="client_user", validate=validate.OneOf(SUBJECTS))


class AccessActivated(Payload):
    firm_id = UUID()
    firm_name = Text()
    firm_slug = Text()
    client_user_id = UUID()  # the subject's id (see SUBJECTS)
    email = Email()
    name = Text()
    send_now = fields.Boolean(required=True)
    subject = Subject()


class InvitationRequested(Payload):
    firm_id = UUID()
    firm_name = Text()
    firm_slug = Text()
    client_user_id = UUID()  # the subject's id
    email = Email()
    name = Text()
    subject = Subject()


class AccessRevoked(Payload):
    firm_id = UUID()
    client_user_id = UUID()  # the subject's id
    reason = fields.String(required=True, validate=validate.OneOf(["deactivated", "deleted"]))
    subject = Subject()


class InvitationCreated(Payload):
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()  # the subject's id
    subject = Subject()
    expires_at = fields.AwareDateTime(required=True)
    resent = fields.Boolean(required=True)
    # {"link": ...} sealed to the users service, so staff can copy the link (never in clear). It is
    # the invitation's *copy* link, not the e-mailed one: opening it asks for a code sent to the
    # invitee's e-mail before the registration / "já tem acesso" page.
    sealed_link = fields.String(load_default=None, allow_none=True)


class InvitationVoided(Payload):
    """A pending invitation stopped working before it was used: a newer one replaced it (Reenviar
    convite), or the client user's access was deactivated or deleted."""
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()  # the subject's id
    reason = fields.String(required=True, validate=validate.OneOf(
        ["superseded", "access_deactivated", "access_deleted"]))
    subject = Subject()


class InvitationAccepted(Payload):
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()  # the subject's id
    identity_id = UUID()
    subject = Subject()


class InvitationAcceptanceRefused(Payload):
    invitation_id = UUID()
    firm_id = UUID()
    client_user_id = UUID()  # the subject's id
    identity_id = UUID()
    reason = fields.String(required=True, validate=validate.OneOf(["not_pending", "expired", "email_mismatch"]))
    subject = Subject()


class EmailRequested(Payload):
    template = fields.String(required=True, validate=validate.OneOf(EMAIL_TEMPLATES))
    recipient = Email()
    locale = fields.String(required=True, validate=validate.OneOf(["pt_BR", "en"]))
    context = fields.Dict(keys=fields.String(), values=fields.String(), required=True)  # EMAIL_CONTEXTS
    sealed = fields.String(required=True)  # secret context (links), sealed to the notifier's key
    idempotency_key = Text()
    reference = fields.String(required=True)  # e.g. "invitation:<id>", echoed in sent/failed
    # the firm the e-mail is sent on behalf of (minor 1, optional): the notifier then shows that
    # firm's display name, logo and Reply-To as its firm.profile_changed projection has them
    firm_id = fields.UUID(load_default=None, allow_none=True)

    @validates_schema(skip_on_field_errors=True)
    def _context_fits_the_template(self, data, **_kw):
        # as strict about unknown context keys as this schema is about unknown fields
        validate_email_context(data["template"], data["context"], unknown=self.unknown)


class NotificationSent(Payload):
    idempotency_key = Text()
    reference = fields.String(required=True)
    message_id = Text()
    sent_at = fields.AwareDateTime(required=True)


class NotificationFailed(Payload):
    idempotency_key = Text()
    reference = fields.String(required=True)
    error = Text()
    failed_at = fields.AwareDateTime(required=True)
    permanent = fields.Boolean(required=True)


class IdentityRegistered(Payload):
    identity_id = UUID()
    email = Email()


class LinkVerified(Payload):
    invitation_id = UUID()
    identity_id = UUID()
    email = Email()  # the identity's normalized e-mail; invitations checks it equals the invitee's


class MembershipGranted(Payload):
    firm_id = UUID()
    firm_name = Text()
    identity_id = UUID()
    role = fields.String(required=True, validate=validate.OneOf(["client", "staff", "admin"]))


class MembershipRevoked(Payload):
    firm_id = UUID()
    identity_id = UUID()
    reason = fields.String(required=True, validate=validate.OneOf(["deactivated", "deleted", "left"]))
    # which membership ended (minor 1): a client's, or a staff member's ("staff"/"admin"). One login
    # may be both at the same firm: auth keeps applying the staff MFA policy when only the client
    # access ends. None (an older producer): whichever it was — auth drops the staff projection.
    role = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["client", "staff", "admin"]))


class SessionEnded(Payload):
    identity_id = UUID()
    # sha256 hex of each ended session id (the `sid` claim): services refuse those tokens at once
    session_hashes = fields.List(fields.String(validate=validate.Length(equal=64)), required=True)
    reason = fields.String(required=True, validate=validate.OneOf(
        ["logout", "ended_by_user", "password_changed", "password_reset", "not_me", "idle", "expired"]))


class IdentityLoggedIn(Payload):
    identity_id = UUID()
    ip = fields.String(required=True, validate=validate.Length(max=64))  # for the firms' audit logs
    at = fields.AwareDateTime(required=True)


class PasswordResetRequested(Payload):
    # the e-mail typed on Esqueci a senha, normalized, whether or not it has an account: auth's own
    # consumer looks it up, so the request costs the same for every e-mail (no enumeration by timing)
    email = Email()


class FirmMfaPolicyChanged(Payload):
    firm_id = UUID()
    require_staff_mfa = fields.Boolean(required=True)


class FirmSignupConfirmed(Payload):
    """firm_signup.confirmed: someone who signed a firm up (Cadastre seu escritório, open only with
    BALCAO_FIRM_SIGNUP=open) confirmed the e-mail by its link, and auth created their login with the
    password of the sign-up (a new e-mail) or checked the password (and second factor) of the login
    the e-mail already had. users creates the firm with its default departments and this login as
    Administrador — or, when the CNPJ is already a firm's, creates nothing (the person sees why on
    the page the confirmation leads to). Once per sign-up (its token is single use). No password or
    token; the admin's name and e-mail are what the firm's team list shows."""
    signup_id = UUID()
    identity_id = UUID()
    email = Email()  # the login's normalized e-mail (the staff member's contact)
    admin_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    legal_name = fields.String(required=True, validate=validate.Length(min=1, max=200))  # Razão social
    cnpj = fields.String(required=True, validate=validate.Regexp(r"^[0-9A-Z]{12}[0-9]{2}$"))
    ip = fields.String(required=True, validate=validate.Length(max=64))  # of the confirmation, for the audit log


LOGO_MEDIA_TYPES = ("image/png", "image/jpeg")
# A logo travels re-encoded (at most 400 × 120 pixels: ~190 KB as the largest PNG), base64-encoded.
LOGO_MAX_BASE64 = 300_000


class LogoImage(Schema):
    """A firm's logo as it travels: the image the users service re-encoded, base64, with its SHA-256."""

    class Meta:
        unknown = EXCLUDE

    media_type = fields.String(required=True, validate=validate.OneOf(LOGO_MEDIA_TYPES))
    data = fields.String(required=True, validate=validate.Length(min=1, max=LOGO_MAX_BASE64))
    sha256 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))

    @validates_schema(skip_on_field_errors=True)
    def _data_is_the_image_named(self, data, **_kw):
        try:
            raw = base64.b64decode(data["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError({"data": ["not base64"]}) from None
        if hashlib.sha256(raw).hexdigest() != data["sha256"]:
            raise ValidationError({"sha256": ["does not match the data"]})


class FirmProfileChanged(Payload):
    """firm.profile_changed (Configurações › Escritório): what a firm shows of itself, whole — the
    display name, the Reply-To of the e-mails sent on its behalf (None: none of its own) and its
    logo (None: no logo). `revision` grows by one at each change: a consumer keeps the highest. The
    Razão social and CNPJ do not travel (no consumer needs them)."""
    firm_id = UUID()
    revision = fields.Integer(required=True, validate=validate.Range(min=1))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    reply_to = fields.Email(required=True, allow_none=True, validate=validate.Length(max=320))
    logo = fields.Nested(LogoImage, required=True, allow_none=True)
    # minor 1: the firm's address in the portal (/e/<slug>/), for the documents service's pages
    slug = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=120))

    @validates_schema(pass_original=True)
    def _logo_fields_are_known(self, data, original_data, **_kw):
        """LogoImage ignores unknown keys (for consumers); the producer is strict about them."""
        if self.unknown != RAISE or not isinstance(original_data, dict):
            return
        extra = set(original_data.get("logo") or {}) - set(LogoImage._declared_fields)
        if extra:
            raise ValidationError({"logo": [f"unknown field(s): {sorted(extra)}"]})


class DepartmentChanged(Payload):
    """department.created / department.renamed: a firm's department as it now is."""
    firm_id = UUID()
    department_id = UUID()
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    position = fields.Integer(required=True)


class StaffMemberChanged(Payload):
    """staff_member.changed: a member of the firm's team as they now are — invited, edited (role,
    departments, carteira), accepted, deactivated, reactivated or removed. An Administrador works
    with every company whatever `company_ids` holds; a Colaborador with the companies of their
    carteira only. A department's removal moves its staff without this event (department.removed
    says where they went). Minor 1: the name and e-mail (the documents service shows who published a
    document and notifies a department's staff of a client's upload)."""
    firm_id = UUID()
    staff_member_id = UUID()
    identity_id = fields.UUID(required=True, allow_none=True)  # None until the invitation is accepted
    role = fields.String(required=True, validate=validate.OneOf(["admin", "staff"]))
    status = fields.String(required=True, validate=validate.OneOf(["invited", "active", "inactive", "deleted"]))
    department_ids = fields.List(fields.UUID(), required=True)
    company_ids = fields.List(fields.UUID(), required=True)  # the carteira
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    email = fields.Email(load_default=None, allow_none=True)


class DepartmentRemoved(Payload):
    """department.removed: what it held (client access, staff, documents) moved to `moved_to_id`."""
    firm_id = UUID()
    department_id = UUID()
    moved_to_id = UUID()


class CompanyState(Payload):
    """A client company of a firm as it is after the change (company.created / changed /
    deactivated / reactivated): what the documents service will need to file its folders. A
    company may be a person (produtor rural, autônomo) identified by a CPF, which is personal data:
    then only its last digits travel (`***.***.*89-09`), never the whole CPF; a CNPJ travels whole
    (uppercase, no punctuation: numeric or alphanumeric)."""
    firm_id = UUID()
    company_id = UUID()
    legal_name = Text()  # Razão social
    trade_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))  # Nome fantasia
    document_kind = fields.String(required=True, validate=validate.OneOf(["cnpj", "cpf"]))
    document = fields.String(required=True)
    active = fields.Boolean(required=True)

    @validates_schema(skip_on_field_errors=True)
    def _document_fits_its_kind(self, data, **_kw):
        pattern = r"^[0-9A-Z]{12}[0-9]{2}$" if data["document_kind"] == "cnpj" else r"^\*{3}\.\*{3}\.\*[0-9]{2}-[0-9]{2}$"
        if not re.match(pattern, data["document"]):
            raise ValidationError({"document": ["a CNPJ (14 characters, no punctuation) or a CPF's masked last "
                                                "digits (***.***.*NN-NN), never a whole CPF"]})


# A client user's access (Novo Usuário › Departamentos, Permissões, Notificações): the values as
# they travel. Levels (ONVIO's): Revisor sees the department's folders and changes nothing;
# Contribuinte also adds documents and folders and deletes only what they added; Proprietário has
# full control of the department's folders.
ACCESS_LEVELS = ("reviewer", "contributor", "owner")  # Revisor, Contribuinte, Proprietário
# what the person may do: "Enviar documentos ao escritório", "Baixar documentos"
CLIENT_PERMISSIONS = ("upload", "download")
# notifications per kind: Novos documentos, Guias a vencer, Avisos do escritório
NOTIFICATION_KINDS = ("new_documents", "due_guias", "firm_notices")
# Nenhuma, E-mail, Portal, E-mail e portal
NOTIFICATION_CHANNELS = ("none", "email", "portal", "email_and_portal")


class DepartmentAccess(Schema):
    """One department a client user sees, with the level (an item of access_changed.departments)."""

    class Meta:
        unknown = EXCLUDE  # a consumer ignores what it does not know; the producer checks (below)

    department_id = UUID()
    level = fields.String(required=True, validate=validate.OneOf(ACCESS_LEVELS))


class ClientPermissions(Schema):
    """What the person may do; a permission added later is an optional field (a minor version)."""

    class Meta:
        unknown = EXCLUDE

    upload = fields.Boolean(required=True)    # Enviar documentos ao escritório
    download = fields.Boolean(required=True)  # Baixar documentos (without it: sees, follows a guia's status)


def _channel():
    return fields.String(required=True, validate=validate.OneOf(NOTIFICATION_CHANNELS))


class NotificationChoices(Schema):
    """The channel chosen per kind of notification; a kind added later is an optional field."""

    class Meta:
        unknown = EXCLUDE

    new_documents = _channel()
    due_guias = _channel()
    firm_notices = _channel()


class ClientUserAccessChanged(Payload):
    """What a client user may see and do at a firm, whole (not a diff): departments with levels,
    companies, permissions and notification choices. Recorded when the user is registered
    (Concluir, an import row), at each Editar that changes any of it, when a department's removal
    moved the user's access, and when the user's login is linked (identity_id known from then).
    `revision` grows by one at each event of the same client user: a consumer keeps the highest.
    Minor 1: the user's `status` (recorded too when it changes: deactivated, deleted, reactivated,
    left) and the name and e-mail the documents service needs ("Visualizado por Carlos Pereira",
    the e-mail listing new documents). No CPF, no phone."""
    firm_id = UUID()
    client_user_id = UUID()
    identity_id = fields.UUID(required=True, allow_none=True)  # None until the invitation is accepted
    revision = fields.Integer(required=True, validate=validate.Range(min=1))
    # why: "created", "edited", "department_removed", "linked" (informative; not a closed list)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=40))
    departments = fields.List(fields.Nested(DepartmentAccess), required=True)
    company_ids = fields.List(fields.UUID(), required=True)
    permissions = fields.Nested(ClientPermissions, required=True)
    notifications = fields.Nested(NotificationChoices, required=True)
    status = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(["not_invited", "invited", "active", "inactive", "deleted"]))
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    email = fields.Email(load_default=None, allow_none=True)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _nested_fields_are_known(self, data, original_data, **_kw):
        """The nested schemas ignore unknown keys (for consumers); the producer is as strict
        about them as about the payload's own fields."""
        if self.unknown != RAISE or not isinstance(original_data, dict):
            return
        nested = {"permissions": ClientPermissions, "notifications": NotificationChoices}
        for name, schema in nested.items():
            extra = set(original_data.get(name) or {}) - set(schema._declared_fields)
            if extra:
                raise ValidationError({name: [f"unknown field(s): {sorted(extra)}"]})
        for item in original_data.get("departments") or []:
            extra = set(item if isinstance(item, dict) else {}) - set(DepartmentAccess._declared_fields)
            if extra:
                raise ValidationError({"departments": [f"unknown field(s): {sorted(extra)}"]})


class DocumentPublished(Payload):
    """document.published: a document became visible in a company × department's folders (staff
    published it, or a client sent it to the firm: `from_client`). Never its bytes, key, storage
    path or file name."""
    firm_id = UUID()
    document_id = UUID()
    company_id = UUID()
    department_id = UUID()
    from_client = fields.Boolean(required=True)
    guia = fields.Boolean(required=True)  # a guia (tipo, vencimento): "Guias a vencer" follows it


class DocumentOpened(Payload):
    """document.opened: a person opened or downloaded a document for the first time."""
    firm_id = UUID()
    document_id = UUID()
    identity_id = UUID()


class DocumentRetracted(Payload):
    """document.retracted (Retirar): clients no longer see it; the record stays for the audit."""
    firm_id = UUID()
    document_id = UUID()


class DocumentReceived(Payload):
    """document.received: a client sent a document to the firm (Enviar documentos ao escritório),
    into the company × department's "Enviados pelo cliente"; the department's staff are told.
    Never its bytes, key, storage path or file name."""
    firm_id = UUID()
    document_id = UUID()
    company_id = UUID()
    department_id = UUID()


class DocumentInboxChanged(Payload):
    """document_inbox.changed: how many unread notices (the bell) a person has at a firm now —
    recorded by the documents service whenever that number changes (a publish, an opening, "Marcar
    todas como lidas", a retract). The users service keeps it for its own pages' Escritório
    selector ("Contabilidade Beta (3)"). `counted_at` grows with every count of the same person at
    the same firm: a consumer keeps the newest, so a late event never overwrites a newer count."""
    firm_id = UUID()
    identity_id = UUID()
    unread = fields.Integer(required=True, validate=validate.Range(min=0))
    counted_at = fields.AwareDateTime(required=True)


class EventSpec(NamedTuple):
    version: int                  # the MAJOR version of the payload schema
    schema: type[Payload]
    consumers: tuple[str, ...]    # the services with a handler for it (one queue each)
    producers: tuple[str, ...]    # the services that record it (tests check their record_event calls)
    minor: int = 0                # optional fields added since the major (consumers ignore them)


CATALOGUE: dict[str, EventSpec] = {
    # The invitation chain, for client users and (minor 1: `subject`, see SUBJECTS) for staff members
    "client_user.access_activated": EventSpec(1, AccessActivated, ("invitations",), ("users",), minor=1),
    "client_user.invitation_requested": EventSpec(1, InvitationRequested, ("invitations",), ("users",), minor=1),
    "client_user.access_revoked": EventSpec(1, AccessRevoked, ("invitations",), ("users",), minor=1),
    # auth keeps a projection of each invitation's state (pending / voided / accepted, expiry): its
    # registration and Vincular Contas pages refuse a ticket whose invitation is no longer pending
    "invitation.created": EventSpec(1, InvitationCreated, ("users", "auth"), ("invitations",), minor=1),
    "invitation.voided": EventSpec(1, InvitationVoided, ("auth",), ("invitations",), minor=1),
    "invitation.accepted": EventSpec(1, InvitationAccepted, ("users", "auth"), ("invitations",), minor=1),
    "invitation.acceptance_refused": EventSpec(1, InvitationAcceptanceRefused, ("users",), ("invitations",),
                                               minor=1),
    # minor 1: `firm_id`, the firm an e-mail is sent on behalf of
    # (documents: the digests of new documents and of guias a vencer)
    "notification.email_requested": EventSpec(1, EmailRequested, ("notifier",), ("auth", "invitations", "documents"),
                                              minor=1),
    # users: an invitation's delivery; documents: a digest's Message-ID and acceptance (comprovante)
    "notification.sent": EventSpec(1, NotificationSent, ("users", "documents"), ("notifier",)),
    "notification.failed": EventSpec(1, NotificationFailed, ("users", "documents"), ("notifier",)),
    "identity.registered": EventSpec(1, IdentityRegistered, (), ("auth",)),
    "link.verified": EventSpec(1, LinkVerified, ("invitations",), ("auth",)),
    "membership.granted": EventSpec(1, MembershipGranted, ("auth",), ("users",)),
    "membership.revoked": EventSpec(1, MembershipRevoked, ("auth",), ("users",), minor=1),
    "session.ended": EventSpec(1, SessionEnded, ("users",), ("auth",)),
    "identity.logged_in": EventSpec(1, IdentityLoggedIn, ("users",), ("auth",)),
    "firm.mfa_policy_changed": EventSpec(1, FirmMfaPolicyChanged, ("auth",), ("users",)),
    # Cadastre seu escritório: the e-mail confirmed, the login ready; users creates the firm
    "firm_signup.confirmed": EventSpec(1, FirmSignupConfirmed, ("users",), ("auth",)),
    # Configurações › Escritório: the notifier keeps a projection (name, logo and Reply-To of the
    # e-mails sent on the firm's behalf)
    "firm.profile_changed": EventSpec(1, FirmProfileChanged, ("notifier", "documents"), ("users",), minor=1),
    # Configurações › Departamentos (the documents service keeps a projection: its folders)
    "department.created": EventSpec(1, DepartmentChanged, ("documents",), ("users",)),
    "department.renamed": EventSpec(1, DepartmentChanged, ("documents",), ("users",)),
    "department.removed": EventSpec(1, DepartmentRemoved, ("documents",), ("users",)),
    # a client user's departments + levels, companies, permissions and notification choices (the
    # documents service keeps a projection: who may see and do what)
    "client_user.access_changed": EventSpec(1, ClientUserAccessChanged, ("documents",), ("users",), minor=1),
    # Configurações › Equipe: a staff member's role, departments, carteira and status (the documents
    # service keeps a projection: who may see which company's and department's folders)
    "staff_member.changed": EventSpec(1, StaffMemberChanged, ("documents",), ("users",), minor=1),
    # Esqueci a senha: the request only records this (the same work for any e-mail); auth's own
    # consumer looks the e-mail up, stores the hashed token and asks for the e-mail
    "password_reset.requested": EventSpec(1, PasswordResetRequested, ("auth",), ("auth",)),
    # Configurações › Empresas: the documents service files its folders by company
    "company.created": EventSpec(1, CompanyState, ("documents",), ("users",)),
    "company.changed": EventSpec(1, CompanyState, ("documents",), ("users",)),
    "company.deactivated": EventSpec(1, CompanyState, ("documents",), ("users",)),
    "company.reactivated": EventSpec(1, CompanyState, ("documents",), ("users",)),
    # Documentos
    # (the documents service consumes its own publish and retract: the notices, off the request)
    "document.published": EventSpec(1, DocumentPublished, ("documents",), ("documents",)),
    "document.opened": EventSpec(1, DocumentOpened, (), ("documents",)),
    "document.retracted": EventSpec(1, DocumentRetracted, ("documents",), ("documents",)),
    "document.received": EventSpec(1, DocumentReceived, ("documents",), ("documents",)),
    # the unread count of a person at a firm (users: the Escritório selector of its pages)
    "document_inbox.changed": EventSpec(1, DocumentInboxChanged, ("users",), ("documents",)),
}


def consumed_by(service: str) -> set[str]:
    return {etype for etype, spec in CATALOGUE.items() if service in spec.consumers}


def produced_by(service: str) -> set[str]:
    return {etype for etype, spec in CATALOGUE.items() if service in spec.producers}


def queue_name(service: str, event_type: str) -> str:
    return f"{service}.{event_type}"


_VERSION = re.compile(r"^([1-9][0-9]{0,5})(?:\.([0-9]{1,6}))?$")


class SchemaVersion(fields.Field):
    """An envelope's `version`: MAJOR (an integer, what every event has carried so far) or
    "MAJOR.MINOR"; loaded as (major, minor)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        match = _VERSION.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValidationError("not a version (MAJOR or \"MAJOR.MINOR\")")
        return int(match.group(1)), int(match.group(2) or 0)


def version_of(spec: EventSpec) -> int | str:
    """What a producer writes: the bare major while no minor was added (the format every
    consumer deployed so far reads), else "MAJOR.MINOR"."""
    return spec.version if spec.minor == 0 else f"{spec.version}.{spec.minor}"


class Envelope(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.OneOf(list(CATALOGUE)))
    version = SchemaVersion(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    payload = fields.Dict(required=True)


def validate_payload(event_type: str, payload: dict) -> dict:
    """Validate a payload against its schema, strictly (the producer's side); returns it
    JSON-ready (as it travels)."""
    if event_type not in CATALOGUE:
        raise ValidationError({"type": [f"unknown event type {event_type!r}"]})
    schema = schema_instance(CATALOGUE[event_type].schema)
    return schema.dump(schema.load(payload if isinstance(payload, dict) else {}))


def make_envelope(event_type: str, payload: dict, *, correlation_id: str) -> dict:
    spec = CATALOGUE[event_type]
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "version": version_of(spec),
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": correlation_id,
        "payload": validate_payload(event_type, payload),
    }


def parse_envelope(body) -> tuple[dict, dict]:
    """Validate a received message (the consumer's side: unknown fields ignored, any version of
    a major up to this consumer's); returns (envelope, loaded payload). Raises ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["message body is not a JSON object"]})
    envelope = schema_instance(Envelope, EXCLUDE).load(body)
    spec = CATALOGUE[envelope["type"]]
    major, minor = envelope["version"]
    if major > spec.version:
        raise ValidationError({"version": [
            f"version {major}.{minor} is newer than this consumer reads ({spec.version}.x): deploy the "
            "consumer's new version, then replay this dead letter"]})
    payload = schema_instance(spec.schema, EXCLUDE).load(envelope["payload"])
    return envelope, payload

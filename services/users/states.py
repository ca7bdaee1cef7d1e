"""Where a client user (or a member of the team) stands, as the one pt-BR state the pages show —
the Status column of the client-user list, a client user's page, the team's list. Written in
Python rather than as Jinja macros: the list shows it on every one of its 50 rows, and two macro
calls a row were a fifth of the page's rendering (issue 11, the staff list against its floor)."""
from __future__ import annotations

from markupsafe import Markup

from services.common.dates import datahora
from services.common.web import request_translations

from .queries import invitation_state


def _(message: str) -> str:
    """gettext through the request's catalogue, looked up once per request (50 rows a page)."""
    return request_translations().ugettext(message)


_BADGE = Markup('<span class="status status-{}">{}</span>')
_NONE = Markup('<span class="muted">—</span>')


def _badge(css: str, text: str, **values) -> Markup:
    """A state's badge; `text` is a translated message, trusted; `values` (an SMTP error, a date) are escaped."""
    label = Markup(text) % values if values else text
    return _BADGE.format(css, label)


def invitation_state_html(person) -> Markup:
    """Where the invitation of an invited person is (queries.invitation_state), or "Acesso ativo"."""
    st = invitation_state(person)
    if st.code == "active":
        return _badge("active", _("Acesso ativo"))
    if st.code == "waiting":
        return _badge("invited", _("Aguardando envio"))
    if st.code == "sent":
        return _badge("invited", _("Convite enviado em %(when)s"), when=datahora(st.when))
    if st.code == "retrying":
        return _badge("inactive", _("Falha no envio: %(error)s — nova tentativa automática"), error=st.error)
    if st.code == "failed":
        return _badge("deleted", _("Falha no envio: %(error)s"), error=st.error)
    if st.code == "expired":
        return _badge("inactive", _("Convite expirado em %(when)s"), when=datahora(st.when))
    return _NONE


def client_user_state_html(cu) -> Markup:
    """The account's status (Excluído, Inativo / Saiu do portal, Não convidado), else where its
    invitation is."""
    if cu.status == "deleted":
        return _badge("deleted", _("Excluído"))
    if cu.status == "inactive":
        return _badge("inactive", _("Saiu do portal") if cu.inactive_reason == "left" else _("Inativo"))
    if cu.status == "not_invited":
        return _badge("not_invited", _("Não convidado"))
    return invitation_state_html(cu)

"""Every route of every service, requested as somebody who must not get another firm's data.

The routes are not listed by hand: they come from each app's `url_map`. Each rule is either
PUBLIC (with the reason) or belongs to a route class whose expected outcome per visitor is in
EXPECTED; a new route that is in neither fails the walk, and so does a new URL variable for
which the walk has no value.

The state is built through the services' own functions: firms Alfa (admin Ana) and Beta (admin
Bruno, Colaboradores Gisele — whose carteira is Beta's company of every walked client — and Irene,
whose carteira is another company, with Joana, a client of it, and a pending team invitation for
Karina), companies of each, Diana a client of Alfa only, Eduardo a client of
Beta only, Carlos a client of both, pending invitations at Beta (Fábio — resent, so his first
link is void — and Helena, who has a login), import jobs at Beta and at Alfa (client users, companies), two password resets asked
for Carlos (the first one void), real auth sessions.

Each rule is requested with Beta's values for its variables as Ana (staff of Alfa), as Diana
(client of Alfa only), as an anonymous visitor and with a session cookie naming Bruno but signed
by another service's key; as Beta's own client (Eduardo) and Beta's non-admin staff (Gisele) with
other people's objects of Beta (another client's invitation, Bruno's session) and Beta's
admin-only pages; as Irene, a Colaborador of Beta, with Beta's client users and import job outside her
carteira (404, like missing ones: she sees only her carteira's clients and companies); and, for rules that name a firm object, with a firm's own slug and the other
firm's object (the IDOR case). Every public token route is requested with a garbage token, a
voided one and another person's live one (TOKEN_ROUTES). POSTs carry a valid CSRF token. The walk
collects every deviation and fails once, with a readable list of offenders. Afterwards Beta's
data is checked unchanged.

Two passes: the four apps in this process on one origin (werkzeug's client), and — with
RabbitMQ and PostgreSQL — the distributed stack behind nginx, over HTTP (the state then travels
through the real broker between the services).
"""
from __future__ import annotations

import dataclasses
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from PIL import Image
from sqlalchemy import func, select, text
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.auth import services as auth_services
from services.common.config import SERVICES
from services.common.contracts import INVITATION_TICKET_AUDIENCE
from services.common.keys import KeyRing
from services.common.runtime import database
from services.common.sessions import SESSION_AUDIENCE, SESSION_COOKIE
from services.users import models as users_models
from services.users import services as users_services
from services.users.imports import read_rows
from services.users.logos import reencode
from services.users.tests.conftest import make_cnpj
from testsupport import build_gateway, csrf_token, csv_bytes, make_test_config, wait_until
from testsupport.infra import queue_counts

# --------------------------------------------------------------------------- the table

# Endpoints nobody needs to be signed in for, and why. Everything else must be in CLASS_OF.
PUBLIC = {
    "static": "static files of the service (CSS, JS, images)",
    "common.static": "static files shared by every service (balcao.css, balcao.js)",
    "choose_locale": "language switch: sets a cookie, reads and shows no data",
    "healthz": "liveness probe for the orchestrator/nginx",
    "readyz": "readiness probe (database reachable), no data",
    "auth.login": "the login page itself",
    "auth.logout": "POST Sair: ends the caller's own session (anonymous: nothing to end)",
    "auth.second_factor": "second step of a login started in this browser (state in the CSRF session)",
    "auth.required_mfa": "enrolment forced at login by the firm's staff MFA policy: continues a login started in "
                         "this browser (state in the CSRF session), otherwise redirects to the login page",
    "auth.forgot_password": "Esqueci a senha: public by design, never reveals whether an account exists",
    "auth.reset_password": "reset page guarded by the random token of the e-mail",
    "auth.renew_session": "renews the caller's own live session, otherwise redirects to the login page",
    "auth.invitation": "invitation page guarded by the signed ticket of the e-mailed link",
    "auth.invitation_register": "registration guarded by the signed invitation ticket",
    "auth.invitation_link": "Vincular Contas guarded by the signed invitation ticket and the password",
    "auth.invitation_send_code": "e-mails a one-time code to the invitee named by the signed invitation ticket "
                                 "(copy link), the same step whether or not the e-mail has an account",
    "auth.invitation_check_code": "checks that one-time code for the signed invitation ticket; rate-limited",
    "invitations.open_invitation": "the e-mailed link, guarded by its random token",
    "auth.firm_signup": "Cadastre seu escritório (404 unless BALCAO_FIRM_SIGNUP=open, as in this walk): the same "
                        "answer whether or not the e-mail has a login, rate-limited per IP and per e-mail",
    "auth.firm_signup_confirm": "confirmation of a firm sign-up, guarded by the random token of the e-mailed link "
                                "(and, for an e-mail that has a login, by that login's password)",
    "ended_session_notice": "front-channel logout hop: records only what a notice signed by auth says (sessions "
                            "already ended), then redirects to a safe relative path; shows no data",
    "notifier.mailbox": "dev mailbox: exists only in the embedded mode on 127.0.0.1 without BALCAO_SMTP_URL; "
                        "anywhere else the route answers 404",
    "notifier.message": "dev mailbox message (dev-only, as above)",
    "notifier.message_html": "dev mailbox message HTML (dev-only, as above)",
}

# Route classes → what each visitor must get. "login": a redirect to /auth/entrar.
# "404": not found, exactly like a missing object. "own": the caller's own account/firm
# (any status below 500, never a redirect into or a body with a firm's data the caller must not
# see; requested with GET only by Beta's own people, whose POSTs would change Beta's data).
# Visitors: "anonymous"; "forged", a session cookie naming Bruno (Beta's admin) but signed with
# another service's key; "staff" (Ana, Alfa's admin) and "client" (Diana, Alfa's client) of
# another firm; Beta's own "beta_staff" (Gisele, role "staff" — a Colaborador whose carteira holds
# the walked clients' company —, not an admin), "beta_client" (Eduardo) and "beta_colaborador"
# (Irene, a Colaborador whose carteira holds none of the walked clients' companies).
EXPECTED = {
    # /e/<slug>/ of Beta
    "firm":         {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                     "beta_staff": "own", "beta_client": "own", "beta_colaborador": "own"},
    # Beta's staff pages that name no client (lists, forms): a Colaborador's show only the carteira
    "firm_staff":   {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                     "beta_staff": "own", "beta_client": "404", "beta_colaborador": "own"},
    # Beta's staff pages of one client user (or import job): outside a Colaborador's carteira, 404
    "firm_staff_object": {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                          "beta_staff": "own", "beta_client": "404", "beta_colaborador": "404"},
    # Beta's admin-only pages
    "firm_admin":   {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                     "beta_staff": "404", "beta_client": "404", "beta_colaborador": "404"},
    # Minha conta, home
    "own_account":  {"anonymous": "login", "forged": "login", "staff": "own", "client": "own",
                     "beta_staff": "own", "beta_client": "own", "beta_colaborador": "own"},
    # Documentos of one of Beta's companies (Oficina Motor Forte: Eduardo's and Carlos's, in Gisele's
    # carteira, not in Irene's): its clients and the staff who work with it, nobody else
    "firm_folder":  {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                     "beta_staff": "own", "beta_client": "own", "beta_colaborador": "404"},
    # the staff's pages of one of Beta's companies × departments (Publicar documentos, Nova pasta, a
    # document's details, Retirar, the comprovante): the staff who work with it, no client (not even
    # its own, whatever the level), nobody else
    "firm_folder_staff": {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                          "beta_staff": "own", "beta_client": "404", "beta_colaborador": "404"},
    # a Distribuir automaticamente batch waiting for review: its author's (Bruno's) and Beta's
    # admins', nobody else's — not even another member of the team
    "staff_batch":  {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                     "beta_staff": "404", "beta_client": "404", "beta_colaborador": "404"},
    # another person's object: Bruno's session, another client's invitation, a firm one is not in
    "other_object": {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                     "beta_staff": "404", "beta_client": "404", "beta_colaborador": "404"},
    # Enviar documentos ao escritório: a client with the permission, Contribuinte or Proprietário in a
    # department (Eduardo: Contribuinte in Fiscal); staff publish through their own pages
    "firm_client_upload": {"anonymous": "login", "forged": "login", "staff": "404", "client": "404",
                           "beta_staff": "404", "beta_client": "own", "beta_colaborador": "404"},
}
# The IDOR case: a firm's own slug with the other firm's object id in the URL (Alfa's slug with
# Beta's object for Alfa's people; Beta's slug with Alfa's object for Beta's people).
EXPECTED_OWN_SLUG = {"staff": "404", "client": "404", "beta_staff": "404", "beta_client": "404",
                     "beta_colaborador": "404"}
# Visitors who belong to Beta (they walk with INSIDER values: other people's objects only).
INSIDERS = {"beta_staff", "beta_client", "beta_colaborador"}
# "other_object" routes whose object is the firm itself: Beta's own people may use them for Beta.
FIRM_AS_OBJECT = {"users.switch_firm", "users.my_firm_default", "users.my_firm_leave"}

CLASS_OF = {
    "users.index": "own_account",
    "users.switch_firm": "other_object",
    "users.linking": "other_object",
    "users.firm_signup_progress": "other_object",  # the page a confirmed sign-up leads to: its login's only
    "users.firm_home": "firm",
    "users.client_users": "firm_staff",
    "users.client_user_new": "firm_staff",
    "users.client_user_detail": "firm_staff_object",
    "users.client_user_edit": "firm_staff_object",
    "users.client_user_deactivate": "firm_staff_object",
    "users.client_user_delete": "firm_staff_object",
    "users.client_user_reactivate": "firm_staff_object",
    "users.client_user_resend": "firm_staff_object",
    "users.import_new": "firm_staff",
    "users.client_users_export": "firm_staff",
    "users.audit_log": "firm_admin",
    "users.security_settings": "firm_admin",
    "users.departments": "firm_admin",
    "users.department_rename": "firm_admin",
    "users.department_remove": "firm_admin",
    "users.team": "firm_admin",
    "users.team_invite": "firm_admin",
    "users.team_member": "firm_admin",
    "users.team_member_edit": "firm_admin",
    "users.team_member_deactivate": "firm_admin",
    "users.team_member_reactivate": "firm_admin",
    "users.team_member_delete": "firm_admin",
    "users.team_member_resend": "firm_admin",
    "users.my_firms": "own_account",
    "users.my_firm_default": "other_object",
    "users.my_firm_leave": "other_object",
    "users.import_job": "firm_staff_object",
    "users.import_start": "firm_staff_object",
    "users.companies": "firm_staff",
    "users.company_new": "firm_admin",
    "users.company_edit": "firm_admin",
    "users.company_deactivate": "firm_admin",
    "users.company_reactivate": "firm_admin",
    "users.company_import_new": "firm_admin",
    "users.company_import_job": "firm_admin",
    "users.company_import_start": "firm_admin",
    "users.firm_profile": "firm_admin",
    "users.firm_logo": "firm",   # the header's logo: every member of the firm, nobody else
    "documents.home": "firm",
    "documents.audit_log": "firm_admin",
    "documents.folder": "firm_folder",
    "documents.open_document": "firm_folder",
    "documents.download_document": "firm_folder",
    "documents.search": "firm",                 # the person's own companies × departments (staff: their Access)
    "documents.download_selected": "firm",      # a ZIP of what the person may download among the ids sent
    "documents.send_documents": "firm_client_upload",
    "documents.publish_documents": "firm_folder_staff",
    "documents.new_folder": "firm_folder_staff",
    "documents.distribute": "firm_staff",
    "documents.distribute_upload": "firm_staff",
    "documents.distribute_review": "staff_batch",
    "documents.distribute_confirm": "staff_batch",
    "documents.distribute_discard": "staff_batch",
    "documents.staff_document": "firm_folder_staff",
    "documents.retract_document": "firm_folder_staff",
    "documents.purge_document": "firm_admin",
    "documents.delivery_receipt": "firm_folder_staff",
    "documents.due_guias": "firm_staff",
    "documents.notices": "firm",        # Avisos: the person's own notices at the firm
    "documents.mark_all_read": "firm",  # Marcar todas como lidas: the person's own notices
    "auth.account": "own_account",
    "auth.account_sessions": "own_account",
    "auth.account_password": "own_account",
    "auth.account_mfa": "own_account",
    "auth.account_mfa_begin": "own_account",
    "auth.account_mfa_confirm": "own_account",
    "auth.account_mfa_disable": "own_account",
    "auth.account_end_other_sessions": "own_account",
    "auth.account_end_session": "other_object",
    "auth.not_me": "own_account",   # GET is the public page of the e-mail; POST needs a live session
}
# auth.not_me GET is the page linked from the "Sua conta foi vinculada" e-mail: public.
PUBLIC_METHODS = {("auth.not_me", "GET"): "page of the 'Sua conta foi vinculada' e-mail, shows no account data"}
# Query strings that carry the object (the variable is not in the path).
QUERY = {"users.switch_firm": "escritorio={slug}"}
# Requested last for a signed-in visitor: it ends the caller's own sessions.
LAST = {"auth.not_me"}
# Path variables whose value is the firm (the rest name an object of the firm).
FIRM_VARIABLES = {"slug"}


# Public routes guarded by a token or a ticket: each is also requested with a garbage token, a
# voided one (superseded, or expired) and another person's live one (TOKEN_KINDS). Every PUBLIC
# endpoint whose reason names a token or a ticket must be here. {token}: the token; {password}: the
# visitor's own password (a wrong one for an anonymous visitor).
NEW_PASSWORD = "Uma-Senha-Nova-Forte-42"
TOKEN_ROUTES = [
    # (endpoint, method, path, form, token kind)
    ("invitations.open_invitation", "GET", "/convite/{token}", None, "invitation"),
    ("auth.invitation", "GET", "/auth/convite?ticket={token}", None, "ticket"),
    ("auth.invitation_register", "POST", "/auth/convite/registrar",
     {"ticket": "{token}", "name": "Nome Sobrenome", "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
     "ticket"),
    ("auth.invitation_link", "POST", "/auth/convite/vincular", {"ticket": "{token}", "password": "{password}"},
     "ticket"),
    ("auth.invitation_send_code", "POST", "/auth/convite/codigo", {"ticket": "{token}"}, "ticket"),
    ("auth.invitation_check_code", "POST", "/auth/convite/codigo/confirmar", {"ticket": "{token}", "code": "123456"},
     "ticket"),
    ("auth.reset_password", "GET", "/auth/redefinir-senha/{token}", None, "reset"),
    ("auth.reset_password", "POST", "/auth/redefinir-senha/{token}",
     {"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD}, "reset"),
    ("auth.firm_signup_confirm", "GET", "/auth/cadastro-de-escritorio/confirmar/{token}", None, "signup"),
    ("auth.firm_signup_confirm", "POST", "/auth/cadastro-de-escritorio/confirmar/{token}",
     {"password": "{password}"}, "signup"),
]
# What each kind of token must get. "invalid": 404 (the "invalid or expired" page), no session
# opened, no firm named. "owner": the live link of another person leads to that person's page
# (the link is the credential: 303 to a ticket for the owner's e-mail), nothing of the visitor's.
# "bearer": the page of the token's owner, no session opened. "not_linked": the visitor's
# password never links the owner's invitation (no session opened; checked after the walk: no
# link.verified, the owner's client user still waiting). None: not requested — registering with
# another person's live ticket, or setting their password with their live reset token, is what
# holding their link allows (proof of possession of the e-mail is issue 8's item 3, tested there).
TOKEN_KINDS = {"garbage": "invalid", "voided": "invalid", "another": None}
# "not_confirmed": the visitor's password never confirms the sign-up of another person's e-mail, which
# has a login (no session opened; checked after the walk: no firm_signup.confirmed).
ANOTHER = {"invitations.open_invitation": "owner", "auth.invitation": "bearer", "auth.invitation_link": "not_linked",
           ("auth.reset_password", "GET"): "bearer", ("auth.firm_signup_confirm", "GET"): "bearer",
           ("auth.firm_signup_confirm", "POST"): "not_confirmed"}

# --------------------------------------------------------------------------- the state

PASSWORDS = {"ana": "Ana-Alfa-Senha-91", "bruno": "Bruno-Beta-Senha-37", "diana": "Diana-Senha-Forte-20",
             "eduardo": "Eduardo-Senha-Forte-31", "carlos": "Carlos-Senha-Forte-58", "gisele": "Gisele-Senha-Forte-73",
             "helena": "Helena-Senha-Forte-64", "irene": "Irene-Senha-Forte-82"}
EMAILS = {"ana": "ana@alfa.example", "bruno": "bruno@beta.example", "diana": "diana@cliente-alfa.example",
          "eduardo": "eduardo@cliente-beta.example", "carlos": "carlos@cliente.example",
          "gisele": "gisele@beta.example", "helena": "helena@cliente-beta.example", "irene": "irene@beta.example"}
NAMES = {"ana": "Ana Souza", "bruno": "Bruno Lima", "diana": "Diana Prado", "eduardo": "Eduardo Teixeira",
         "carlos": "Carlos Pereira", "gisele": "Gisele Beta", "helena": "Helena Beta", "irene": "Irene Beta"}
FABIO = ("Fábio Beta", "fabio@cliente-beta.example")
JOANA = ("Joana Beta", "joana@cliente-beta.example")     # a client of Irene's carteira (Mercado)
KARINA = ("Karina Beta", "karina@beta.example")          # invited to Beta's team, not accepted yet
# Text only Beta's pages contain: none of it may reach Alfa's people.
BETA_MARKERS = ("Contabilidade Beta", "Oficina Motor Forte", "Eduardo Teixeira", "eduardo@cliente-beta.example",
                "bruno@beta.example", "Fábio Beta", "fabio@cliente-beta.example", "importacao-beta.csv",
                "helena@cliente-beta.example", "Gisele Beta", "Irene Beta", "Joana Beta", "Mercado Bom Preço",
                "karina@beta.example", "empresas-beta.csv", "Gabriela Beta Comércio")
# Text only Alfa's pages contain: none of it may reach Beta's people.
ALFA_MARKERS = ("Contabilidade Alfa", "Padaria Pão Quente", "Diana Prado", "diana@cliente-alfa.example",
                "ana@alfa.example", "Hugo Alfa", "alfa-client_users.csv", "alfa-companies.csv")
# What Beta's staff see and Beta's clients must not: the other clients and the firm's work.
BETA_STAFF_ONLY = ("Fábio Beta", "fabio@cliente-beta.example", "importacao-beta.csv", "Gabriel Beta",
                   "helena@cliente-beta.example", "carlos@cliente.example", "empresas-beta.csv",
                   "Gabriela Beta Comércio")
# What Irene (a Colaborador of Beta) must not see: the clients and the company outside her carteira,
# Bruno's import job (its rows name clients outside it), and Beta's team.
OUTSIDE_CARTEIRA = ("Oficina Motor Forte", "Eduardo Teixeira", "eduardo@cliente-beta.example", "Fábio Beta",
                    "fabio@cliente-beta.example", "helena@cliente-beta.example", "carlos@cliente.example",
                    "importacao-beta.csv", "Gabriel Beta", "Gisele Beta", "karina@beta.example",
                    "empresas-beta.csv")
VISITORS = {"anonymous": None, "forged": None, "staff": "ana", "client": "diana", "beta_staff": "gisele",
            "beta_client": "eduardo", "beta_colaborador": "irene"}


@dataclass
class Answer:
    status: int
    body: str
    location: str
    session_set: bool  # the answer sets a (non-empty) session cookie


class InProcessBrowser(Client):
    """A browser on the in-process origin, with its own cookies and client IP (rate limits are per IP)."""

    def __init__(self, app, ip: str):
        super().__init__(app, Response, use_cookies=True)
        self.ip = ip

    def open(self, *args, **kwargs):
        kwargs["environ_base"] = {"REMOTE_ADDR": self.ip, **(kwargs.get("environ_base") or {})}
        return super().open(*args, **kwargs)

    def fetch(self, method: str, path: str, data: dict | None = None) -> Answer:
        response = self.open(path, method=method, data=data)
        cookies = SimpleCookie()
        for header in response.headers.getlist("Set-Cookie"):
            cookies.load(header)
        # (an image — a firm's logo — is not UTF-8: read as text what can be, for the markers)
        return Answer(response.status_code, response.get_data().decode("utf-8", "replace"),
                      response.headers.get("Location", ""),
                      any(k.endswith(SESSION_COOKIE) and v.value for k, v in cookies.items()))

    def session_cookie(self) -> str | None:
        cookie = self.get_cookie(SESSION_COOKIE)
        return cookie.value if cookie is not None else None

    def put_session_cookie(self, value: str) -> None:
        self.set_cookie(SESSION_COOKIE, value)


class HttpBrowser:
    """A browser talking HTTP to the nginx gateway of the distributed stack."""

    def __init__(self, base_url: str):
        import requests
        self.base_url, self.http = base_url, requests.Session()

    def fetch(self, method: str, path: str, data: dict | None = None) -> Answer:
        response = self.http.request(method, self.base_url + path, data=data, allow_redirects=False, timeout=60)
        location = response.headers.get("Location", "")
        if location.startswith(self.base_url):
            location = location[len(self.base_url):]
        return Answer(response.status_code, response.text, location,
                      any(c.name.endswith(SESSION_COOKIE) and c.value for c in response.cookies))

    def session_cookie(self) -> str | None:
        return self.http.cookies.get(SESSION_COOKIE)

    def put_session_cookie(self, value: str) -> None:
        self.http.cookies.set(SESSION_COOKIE, value)


@dataclass
class Stage:
    """Where the walk runs: the config of the services' databases, the apps (for their url maps),
    a browser factory, and `settle`, which waits until the services have exchanged their events."""

    config: Any
    apps: dict
    browser: Any          # (ip) → a browser
    settle: Any           # (predicate, message) → None
    name: str


@pytest.fixture
def in_process_stage(config, bus) -> Stage:
    config = dataclasses.replace(config, firm_signup=True)  # the sign-up routes are walked too
    dispatcher, apps = build_gateway(config)

    def settle(predicate, message):
        bus.pump()
        assert predicate(), message

    return Stage(config, apps, lambda ip: InProcessBrowser(dispatcher, ip), settle, "in-process")


@pytest.fixture(scope="module")
def stack_product(mailbox, tmp_path_factory):
    from tests.conftest import running_product
    workdir = tmp_path_factory.mktemp("route-walk")
    with running_product(workdir, smtp_port=mailbox.port, tag="walk",
                         extra_env={"BALCAO_FIRM_SIGNUP": "open"}) as product:
        assert product.stack is not None, "the distributed pass needs RabbitMQ and PostgreSQL"
        product.workdir = workdir
        yield product


@pytest.fixture
def gateway_stage(stack_product) -> Stage:
    product = stack_product
    config = make_test_config(product.workdir / "var", product.database_urls, broker_url=product.broker_url,
                              public_url=product.url, firm_signup=True)
    _dispatcher, apps = build_gateway(config)  # only for the url maps: the requests go through nginx

    def quiet():
        published = all(not product.scalar(svc, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        for svc in SERVICES)
        return published and all(counts == (0, 0) or name.endswith("dead_letters")
                                 for name, counts in queue_counts(product.broker_url, product.rabbitmqctl).items())

    def settle(predicate, message):
        wait_until(lambda: quiet() and predicate(), timeout=90, message=message)

    return Stage(config, apps, lambda ip: HttpBrowser(product.url), settle, "gateway")


@dataclass
class State:
    alfa_slug: str
    beta_slug: str
    # variable name → Beta's values for it (every one is requested)
    beta_values: dict[str, list[str]] = field(default_factory=dict)
    # what Beta's own people request: other people's objects of Beta only
    insider_values: dict[str, list[str]] = field(default_factory=dict)
    # Alfa's objects, for the IDOR case of Beta's people
    alfa_values: dict[str, list[str]] = field(default_factory=dict)
    beta_client_user_ids: list[uuid.UUID] = field(default_factory=list)
    beta_job_id: uuid.UUID | None = None
    beta_company_job_id: uuid.UUID | None = None
    beta_company_id: uuid.UUID | None = None
    bruno_sid: str = ""
    unlinked_invitations: dict[str, uuid.UUID] = field(default_factory=dict)
    # token kind ("invitation", "ticket", "reset") → {"garbage"|"voided"|"another": token}
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    helena_client_user_id: uuid.UUID | None = None
    helena_invitation_id: str = ""
    joana_client_user_id: uuid.UUID | None = None
    beta_staff_member_ids: list[uuid.UUID] = field(default_factory=list)
    signup_id: str = ""  # Gabriela's confirmed sign-up (Cadastre seu escritório): another person's page


def _identity(config, who: str):
    with database("auth", config).begin() as s:
        return auth_services.register_identity(s, email=EMAILS[who], name=NAMES[who], password=PASSWORDS[who]).id


def _client_user(session, firm, who, company):
    return users_services.register_client_user(session, firm=firm, name=NAMES.get(who, who), email=EMAILS.get(who, who),
                                               company_ids=[company.id], access="now")


def _invitation_ids(config, ids) -> dict:
    with database("users", config).begin() as s:
        return {cu_id: s.get(users_models.ClientUser, cu_id).invitation_id for cu_id in ids}


def links_sent_to(config, recipient: str, path: str) -> list[str]:
    """The links of the e-mails rendered for `recipient` (the notifier's delivery records), oldest first."""
    with database("notifier", config).begin() as s:
        bodies = s.execute(text("SELECT text_body FROM deliveries WHERE recipient = :r ORDER BY created_at"),
                           {"r": recipient}).scalars().all()
    links = [m.group(0) for body in bodies for m in re.finditer(r"https?://\S*" + re.escape(path) + r"[^\s<>\"]+", body)]
    return list(dict.fromkeys(links))  # an e-mail may show its link twice


def sign_in(browser, who: str) -> None:
    html = browser.fetch("GET", "/auth/entrar").body
    answer = browser.fetch("POST", "/auth/entrar", {"csrf_token": csrf_token(html), "email": EMAILS[who],
                                                    "password": PASSWORDS[who]})
    assert answer.status == 303, (who, answer.status, answer.body[:500])
    assert browser.session_cookie() is not None


def build_state(stage: Stage) -> State:
    config, settle = stage.config, stage.settle
    ids = {who: _identity(config, who) for who in PASSWORDS}
    users_db = database("users", config)
    with users_db.begin() as s:
        alfa = users_services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(11),
                                          admin_identity_id=ids["ana"], admin_name=NAMES["ana"], admin_email=EMAILS["ana"])
        beta = users_services.create_firm(s, name="Contabilidade Beta", cnpj=make_cnpj(22),
                                          admin_identity_id=ids["bruno"], admin_name=NAMES["bruno"],
                                          admin_email=EMAILS["bruno"])
        alfa_company = users_services.create_company(s, firm=alfa, name="Padaria Pão Quente Ltda", cnpj=make_cnpj(101))
        beta_company = users_services.create_company(s, firm=beta, name="Oficina Motor Forte Ltda", cnpj=make_cnpj(201))
        beta_company2 = users_services.create_company(s, firm=beta, name="Mercado Bom Preço Ltda", cnpj=make_cnpj(202))
        logos = {}  # Configurações › Escritório: each firm has a logo (its URL names its hash)
        for firm, who, color in ((alfa, "ana", (200, 0, 0)), (beta, "bruno", (0, 0, 200))):
            image = io.BytesIO()
            Image.new("RGB", (120, 40), color).save(image, "PNG")
            users_services.update_firm_profile(s, firm=firm, name=firm.name, reply_to=None,
                                               logo=reencode(image.getvalue()),
                                               actor=users_services.Actor(ids[who], NAMES[who], EMAILS[who]))
            logos[firm.slug] = firm.logo_digest
        staff_ids = [users_services.add_staff_member(s, firm=beta, identity_id=ids[who], name=NAMES[who],
                                                     email=EMAILS[who], role="staff", company_ids=[company.id]).id
                     for who, company in (("gisele", beta_company), ("irene", beta_company2))]
        staff_ids.append(users_services.invite_staff_member(s, firm=beta, name=KARINA[0], email=KARINA[1],
                                                            role="staff").id)
        ana_member_id = s.scalar(select(users_models.StaffMember.id)
                                 .where(users_models.StaffMember.identity_id == ids["ana"]))
        bruno_member_id = s.scalar(select(users_models.StaffMember.id)
                                   .where(users_models.StaffMember.identity_id == ids["bruno"]))
        joana = users_services.register_client_user(s, firm=beta, name=JOANA[0], email=JOANA[1],
                                                    company_ids=[beta_company2.id], access="now").id
        members = {  # (firm, who) → client user id
            ("alfa", "diana"): _client_user(s, alfa, "diana", alfa_company).id,
            ("alfa", "carlos"): _client_user(s, alfa, "carlos", alfa_company).id,
            # Eduardo may send documents to the firm: Contribuinte in Fiscal, with the permission
            ("beta", "eduardo"): users_services.register_client_user(
                s, firm=beta, name=NAMES["eduardo"], email=EMAILS["eduardo"], company_ids=[beta_company.id],
                access="now", permissions={"download", "upload"},
                departments={d.id: "contributor" if d.name == "Fiscal" else "reviewer"
                             for d in s.scalars(select(users_models.Department)
                                                .where(users_models.Department.firm_id == beta.id))}).id,
            ("beta", "carlos"): _client_user(s, beta, "carlos", beta_company).id,
        }
        fabio = users_services.register_client_user(s, firm=beta, name=FABIO[0], email=FABIO[1],
                                                    company_ids=[beta_company.id], access="now").id
        helena = _client_user(s, beta, "helena", beta_company).id
        firms = {"alfa": alfa.id, "beta": beta.id}
        departments = {name: [str(d) for d in s.scalars(select(users_models.Department.id)
                                                        .where(users_models.Department.firm_id == firm_id))]
                       for name, firm_id in firms.items()}
        alfa_slug, beta_slug = alfa.slug, beta.slug
    waiting = [*members.values(), fabio, helena, joana]
    # invitations are created (invitations service) and recorded back in users
    settle(lambda: all(_invitation_ids(config, waiting).values()), "the invitation chain did not run")
    invitations = {}
    with users_db.begin() as s:
        for (firm, who), cu_id in members.items():
            cu = s.get(users_models.ClientUser, cu_id)
            invitations[(firm, who)] = cu.invitation_id
            assert users_services.grant_membership(s, firm_id=firms[firm], client_user_id=cu_id,
                                                   identity_id=ids[who], invitation_id=cu.invitation_id)
        fabio_invitation = s.get(users_models.ClientUser, fabio).invitation_id
        karina_invitation = s.get(users_models.StaffMember, staff_ids[-1]).invitation_id
        assert karina_invitation is not None
        helena_invitation = s.get(users_models.ClientUser, helena).invitation_id
        beta_firm = s.get(users_models.Firm, firms["beta"])
        rows = read_rows("importacao-beta.csv", io.BytesIO(csv_bytes(
            [["Nome", "CPF", "Telefone", "E-mail", "Empresas"], ["Gabriel Beta", "", "", "gabriel@beta.example", ""]])))
        job_id = users_services.create_import_job(s, firm=beta_firm, identity_id=ids["bruno"],
                                                  filename="importacao-beta.csv", rows=rows).id
        company_rows = read_rows("empresas-beta.csv", io.BytesIO(csv_bytes(
            [["Razão social", "Nome fantasia", "CNPJ/CPF", "Código"],
             ["Gabriela Beta Comércio Ltda", "", make_cnpj(202), ""]])), kind="companies")
        company_job_id = users_services.create_import_job(s, firm=beta_firm, identity_id=ids["bruno"],
                                                          filename="empresas-beta.csv", rows=company_rows,
                                                          kind="companies").id
        beta_company_id, alfa_company_id = beta_company.id, alfa_company.id
        # Alfa's import jobs of both kinds: Beta's people request them under Beta's slug (IDOR)
        alfa_firm = s.get(users_models.Firm, firms["alfa"])
        alfa_job_ids = [users_services.create_import_job(
            s, firm=alfa_firm, identity_id=ids["ana"], filename=f"alfa-{kind}.csv", kind=kind,
            rows=read_rows(f"alfa-{kind}.csv", io.BytesIO(csv_bytes(table)), kind=kind)).id
            for kind, table in (("client_users", [["Nome", "CPF", "Telefone", "E-mail", "Empresas"],
                                                  ["Hugo Alfa", "", "", "hugo@cliente-alfa.example", ""]]),
                                ("companies", [["Razão social", "Nome fantasia", "CNPJ/CPF", "Código"],
                                               ["Hugo Alfa Comércio Ltda", "", make_cnpj(102), ""]]))]
    st = State(alfa_slug=alfa_slug, beta_slug=beta_slug, beta_job_id=job_id, beta_company_job_id=company_job_id,
               beta_company_id=beta_company_id,
               beta_client_user_ids=[members[("beta", "eduardo")], members[("beta", "carlos")], fabio, helena],
               helena_client_user_id=helena, helena_invitation_id=str(helena_invitation),
               joana_client_user_id=joana, beta_staff_member_ids=[bruno_member_id, *staff_ids])
    st.beta_values = {
        "slug": [beta_slug],
        "client_user_id": [str(i) for i in st.beta_client_user_ids],
        "job_id": [str(job_id), str(company_job_id)],
        "company_id": [str(beta_company_id)],
        "department_id": departments["beta"],
        "staff_member_id": [str(i) for i in st.beta_staff_member_ids],
        "digest": [logos[beta_slug]],
        # the invitations of Beta's linked clients (Beta's invitations not linked yet: see
        # test_linking_page_of_an_unlinked_invitation_of_another_firm_is_404)
        "invitation_id": [str(invitations[("beta", "eduardo")]), str(invitations[("beta", "carlos")])],
    }
    # Beta's own people: Carlos's invitation is another person's (Eduardo's own is his)
    st.insider_values = {**st.beta_values, "invitation_id": [str(invitations[("beta", "carlos")])]}
    st.alfa_values = {"slug": [alfa_slug], "client_user_id": [str(members[("alfa", "diana")])],
                      "company_id": [str(alfa_company_id)], "department_id": departments["alfa"],
                      "staff_member_id": [str(ana_member_id)], "job_id": [str(j) for j in alfa_job_ids],
                      "digest": [logos[alfa_slug]]}
    beta_doc, alfa_doc = _documents(stage, ids, firms, beta_company_id, alfa_company_id)
    st.beta_values["document_id"] = st.insider_values["document_id"] = [beta_doc]
    st.alfa_values["document_id"] = [alfa_doc]
    beta_batch, alfa_batch = _batches(stage, ids, firms)
    st.beta_values["batch_id"] = st.insider_values["batch_id"] = [beta_batch]
    st.alfa_values["batch_id"] = [alfa_batch]
    st.unlinked_invitations = {"pending": fabio_invitation, "staff": karina_invitation}
    with users_db.begin() as s:  # Fábio's invitation is resent: the first one is superseded
        cu = s.get(users_models.ClientUser, fabio)
        users_services.resend_invitation(s, firm=s.get(users_models.Firm, firms["beta"]), client_user=cu,
                                         cooldown_seconds=0)
    settle(lambda: _invitation_ids(config, [fabio])[fabio] != fabio_invitation
           and len(links_sent_to(config, FABIO[1], "/convite/")) == 2, "Fábio's invitation was not resent")
    with users_db.begin() as s:
        st.unlinked_invitations["superseded"] = fabio_invitation
        st.unlinked_invitations["pending"] = s.get(users_models.ClientUser, fabio).invitation_id
    assert st.unlinked_invitations["pending"] != fabio_invitation
    _tokens(stage, st)
    return st


def _documents(stage: Stage, ids, firms, beta_company_id, alfa_company_id) -> tuple[str, str]:
    """A guia each firm's admin published (Beta's for Oficina Motor Forte, Alfa's for the padaria):
    (Beta's document id, Alfa's)."""
    from services.documents import models as documents_models
    from testsupport.documents import publish
    from testsupport.guias import das_guia

    def projected():
        with database("documents", stage.config).begin() as s:
            return s.scalar(select(func.count()).select_from(documents_models.Member)
                            .where(documents_models.Member.identity_id.in_([ids["bruno"], ids["ana"]]))) == 2
    stage.settle(projected, "the documents service never learnt of the firms' admins")
    made = []
    for firm, who, company_id, cnpj in (("beta", "bruno", beta_company_id, make_cnpj(201)),
                                        ("alfa", "ana", alfa_company_id, make_cnpj(101))):
        person = dataclasses.make_dataclass("Person", ["identity_id", "name"])(ids[who], NAMES[who])
        made.append(str(publish(stage.config, firm_id=firms[firm], company_id=company_id, department_name="Fiscal",
                                data=das_guia(cnpj, "10/2026", "20/11/2026", "99,90"),
                                name=f"DAS {firm} 10-2026.pdf", by=person)))
    return made[0], made[1]


def _batches(stage: Stage, ids, firms) -> tuple[str, str]:
    """A Distribuir automaticamente batch each firm's admin left waiting for review (Bruno's at
    Beta, Ana's at Alfa): (Beta's batch id, Alfa's)."""
    from testsupport.documents import pending_batch
    from testsupport.guias import das_guia

    made = []
    for firm, who, cnpj in (("beta", "bruno", make_cnpj(201)), ("alfa", "ana", make_cnpj(101))):
        person = dataclasses.make_dataclass("Person", ["identity_id", "name"])(ids[who], NAMES[who])
        made.append(str(pending_batch(stage.config, firm_id=firms[firm], by=person,
                                      files=[(f"DAS {firm} lote.pdf", das_guia(cnpj, "11/2026", "20/12/2026", "9,90"))])))
    return made[0], made[1]


def _tokens(stage: Stage, st: State) -> None:
    """Tokens of every kind for TOKEN_ROUTES: garbage, voided (superseded or expired), another
    person's live one — all taken the way their owner gets them (the e-mails, the link's redirect)."""
    config, settle = stage.config, stage.settle
    superseded, _live = (urlsplit(link).path.rsplit("/", 1)[1] for link in links_sent_to(config, FABIO[1], "/convite/"))
    [helena_link] = links_sent_to(config, EMAILS["helena"], "/convite/")
    helena_token = urlsplit(helena_link).path.rsplit("/", 1)[1]
    browser = stage.browser("10.77.9.1")
    opened = browser.fetch("GET", f"/convite/{helena_token}")
    assert opened.status == 303, opened.status
    [helena_ticket] = parse_qs(urlsplit(opened.location).query)["ticket"]
    keyring = KeyRing(config.keys_dir)
    claims = keyring.verify("invitations", helena_ticket, audience=INVITATION_TICKET_AUDIENCE)
    assert claims["email"] == EMAILS["helena"]
    expired_ticket = keyring.sign("invitations", {k: v for k, v in claims.items()
                                                  if k not in ("iss", "aud", "iat", "exp")},
                                  audience=INVITATION_TICKET_AUDIENCE, ttl=timedelta(minutes=-5))
    for _ in range(2):  # Carlos asks twice: the second reset link voids the first
        page = browser.fetch("GET", "/auth/esqueci-senha").body
        assert browser.fetch("POST", "/auth/esqueci-senha", {"csrf_token": csrf_token(page),
                                                             "email": EMAILS["carlos"]}).status == 200
    settle(lambda: len(links_sent_to(config, EMAILS["carlos"], "/auth/redefinir-senha/")) == 2,
           "the reset e-mails never came")
    first_reset, live_reset = (urlsplit(link).path.rsplit("/", 1)[1]
                               for link in links_sent_to(config, EMAILS["carlos"], "/auth/redefinir-senha/"))
    used_signup, live_signup, st.signup_id = _signup_tokens(stage)
    garbage = "Zm9vYmFyLWxpeG8tbmFvLWUtdW0tdG9rZW4tZGUtdmVyZGFkZQ"
    st.beta_values["signup_id"] = st.insider_values["signup_id"] = [st.signup_id]
    st.tokens = {
        "invitation": {"garbage": garbage, "voided": superseded, "another": helena_token},
        "ticket": {"garbage": "eyJhbGciOiJFZERTQSJ9.eyJpbnYiOiJ4In0." + garbage, "voided": expired_ticket,
                   "another": helena_ticket},
        "reset": {"garbage": garbage, "voided": first_reset, "another": live_reset},
        "signup": {"garbage": garbage, "voided": used_signup, "another": live_signup},
    }


GAMA = ("Gabriela Gama", "gabriela@gama.example", "Gama-Senha-Forte-26")


def _signup_tokens(stage: Stage) -> tuple[str, str, str]:
    """Cadastre seu escritório, twice: Gabriela (a new e-mail) confirms hers — a used link, and the
    sign-up whose page is another person's —, and one in Carlos's e-mail (he has a login) stays
    live: (used token, live token, Gabriela's sign-up id)."""
    config, settle = stage.config, stage.settle
    browser = stage.browser("10.77.9.2")
    for email, cnpj in ((GAMA[1], make_cnpj(303)), (EMAILS["carlos"], make_cnpj(304))):
        page = browser.fetch("GET", "/auth/cadastro-de-escritorio").body
        sent = browser.fetch("POST", "/auth/cadastro-de-escritorio", {
            "csrf_token": csrf_token(page), "legal_name": "Contabilidade Gama Ltda", "cnpj": cnpj,
            "admin_name": GAMA[0], "email": email, "password": GAMA[2], "password_confirmation": GAMA[2]})
        assert sent.status == 200, sent.body[:300]
    path = "/auth/cadastro-de-escritorio/confirmar/"
    settle(lambda: all(links_sent_to(config, e, path) for e in (GAMA[1], EMAILS["carlos"])),
           "the sign-up e-mails never came")
    [used], [live] = (links_sent_to(config, e, path) for e in (GAMA[1], EMAILS["carlos"]))
    page = browser.fetch("GET", urlsplit(used).path).body
    done = browser.fetch("POST", urlsplit(used).path, {"csrf_token": csrf_token(page)})
    assert done.status == 303 and done.location.startswith("/cadastro-de-escritorio/"), (done.status, done.body[:300])
    signup_id = done.location.rsplit("/", 1)[1]

    def created():
        with database("users", config).begin() as s:
            return s.get(users_models.FirmSignupOutcome, uuid.UUID(signup_id)) is not None
    settle(created, "the signed-up firm was never created")
    return urlsplit(used).path.rsplit("/", 1)[1], urlsplit(live).path.rsplit("/", 1)[1], signup_id


# --------------------------------------------------------------------------- the walk

@dataclass
class Request:
    endpoint: str
    method: str
    url: str
    cls: str
    own_slug: bool = False


def _rules(apps):
    for svc in SERVICES:
        for rule in apps[svc].url_map.iter_rules():
            yield svc, rule


def plan(apps, state: State, offenders: list[str], *, values: dict | None = None,
         own_slug_values: dict | None = None) -> tuple[list[Request], list[str]]:
    """Every (rule, method, values) to request; unclassified rules become offenders.
    `values`: the objects requested (Beta's by default); `own_slug_values`: the IDOR variant (by
    default Alfa's slug with Beta's objects)."""
    values = state.beta_values if values is None else values
    own_slug_values = {**values, "slug": [state.alfa_slug]} if own_slug_values is None else own_slug_values
    requests, public = [], []
    for svc, rule in _rules(apps):
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        if rule.endpoint in PUBLIC:
            public.append(rule.endpoint)
            continue
        cls = CLASS_OF.get(rule.endpoint)
        if cls is None:
            offenders.append(f"{svc} {rule.rule} ({rule.endpoint}): not classified — add it to PUBLIC with a "
                             "reason or to CLASS_OF with its expected outcomes")
            continue
        unknown = [m for m in methods if m not in ("GET", "POST")]
        if unknown:
            offenders.append(f"{svc} {rule.rule}: methods {unknown} are not walked")
        missing = [v for v in rule.arguments if v not in values]
        if missing:
            offenders.append(f"{svc} {rule.rule}: no value of Beta's for {missing}")
            continue
        for method in methods:
            if (rule.endpoint, method) in PUBLIC_METHODS:
                continue
            for url in _urls(rule, values):
                query = QUERY.get(rule.endpoint)
                requests.append(Request(rule.endpoint, method,
                                        url + ("?" + query.format(slug=state.beta_slug) if query else ""), cls))
            if "slug" in rule.arguments and rule.arguments - FIRM_VARIABLES:
                missing = sorted(v for v in rule.arguments if v not in own_slug_values)
                if missing:  # the IDOR case would silently go unwalked
                    offenders.append(f"{svc} {rule.rule}: no value of the other firm's for {missing} (IDOR case)")
                    continue
                for url in _urls(rule, own_slug_values):
                    requests.append(Request(rule.endpoint, method, url, cls, own_slug=True))
    requests.sort(key=lambda r: r.endpoint in LAST)
    return requests, public


def insider_requests(apps, state: State, offenders: list[str]) -> tuple[list[Request], list[str]]:
    """What Beta's own people request: other people's objects of Beta, and Alfa's objects under
    Beta's slug (the IDOR case). Problems of the table the outsiders' plan reports too are not
    repeated in `offenders`."""
    found: list[str] = []
    requests, public = plan(apps, state, found, values=state.insider_values,
                            own_slug_values={**state.alfa_values, "slug": [state.beta_slug]})
    offenders.extend(o for o in found if o not in offenders)
    return requests, public


def _urls(rule, values: dict[str, list[str]]) -> list[str]:
    combos = [{}]
    for name in sorted(rule.arguments):
        combos = [{**c, name: v} for c in combos for v in values[name]]
    urls = []
    for combo in combos:
        path = rule.rule
        for name, value in combo.items():
            path = path.replace(f"<{name}>", quote(value, safe=""))
        assert "<" not in path, f"converter in {rule.rule}: build the URL with the converter's syntax"
        urls.append(path)
    return urls


def _markers(who: str) -> tuple[tuple[str, ...], str]:
    """What a visitor must never see, and whose firm they must never be redirected into."""
    if who == "beta_client":
        return ALFA_MARKERS + BETA_STAFF_ONLY, "alfa"
    if who == "beta_staff":
        return ALFA_MARKERS, "alfa"
    if who == "beta_colaborador":
        return ALFA_MARKERS + OUTSIDE_CARTEIRA, "alfa"
    return BETA_MARKERS, "beta"


def verdict(expected: str, response, state: State, who: str = "staff") -> str | None:
    """None when the answer is what is due, else what went wrong."""
    if not isinstance(response, Answer):  # a werkzeug response (tests that drive the apps directly)
        response = Answer(response.status_code, response.get_data(as_text=True), response.headers.get("Location", ""),
                          False)
    status, body, location = response.status, response.body, response.location
    if expected == "login":
        if status in (301, 302, 303, 307, 308) and urlsplit(location).path == "/auth/entrar":
            return None
        return f"expected a redirect to /auth/entrar, got {status} {location}".strip()
    markers, foreign = _markers(who)
    foreign_slug = state.alfa_slug if foreign == "alfa" else state.beta_slug
    leak = [m for m in markers if m in body]
    if status in (301, 302, 303, 307, 308) and f"/e/{foreign_slug}/" in location:
        return f"redirected into {foreign}: {status} {location}"
    if leak:
        return f"data {who} must not see in the answer ({status}): {leak}"
    if expected == "404":
        return None if status == 404 else f"expected 404, got {status} {location}".strip()
    if expected == "own":
        return None if status < 500 else f"server error {status}"
    raise AssertionError(f"unknown expectation {expected}")


def token_verdict(expected: str, answer: Answer, state: State, who: str) -> str | None:
    if answer.status >= 500:
        return f"server error {answer.status}"
    if answer.session_set:
        return "a session was opened"
    if expected == "invalid":
        if answer.status != 404:
            return f"expected the invalid-link page (404), got {answer.status} {answer.location}".strip()
        markers, _ = _markers(who)
        leak = [m for m in markers + ("Contabilidade Beta",) if m in answer.body]
        return f"a firm named on the invalid-link page: {leak}" if leak else None
    if expected == "owner":
        query = parse_qs(urlsplit(answer.location).query)
        if answer.status != 303 or urlsplit(answer.location).path != "/auth/convite" or "ticket" not in query:
            return f"expected 303 to the owner's ticket page, got {answer.status} {answer.location}"
        return None
    if expected == "bearer":
        return None if answer.status == 200 else f"expected the owner's page (200), got {answer.status}"
    if expected == "not_linked":
        return f"linked: {answer.status} {answer.location}" if "/vinculando/" in answer.location else None
    if expected == "not_confirmed":
        return f"confirmed: {answer.status} {answer.location}" if "/cadastro-de-escritorio/" in answer.location else None
    raise AssertionError(f"unknown expectation {expected}")


def walk_tokens(browsers: dict, state: State, offenders: list[str]) -> int:
    walked = 0
    for who, browser in browsers.items():
        token = csrf_token(browser.fetch("GET", "/auth/entrar").body)
        password = PASSWORDS.get(VISITORS[who] or "", "senha-errada-de-proposito-1")
        for endpoint, method, path, form, kind in TOKEN_ROUTES:
            for which, expected in TOKEN_KINDS.items():
                if which == "another":
                    expected = ANOTHER.get((endpoint, method), ANOTHER.get(endpoint))
                if expected is None:
                    continue
                value = state.tokens[kind][which]
                url = path.format(token=quote(value, safe=""))
                data = {k: v.format(token=value, password=password) for k, v in (form or {}).items()}
                answer = browser.fetch(method, url, {"csrf_token": token, **data} if method == "POST" else None)
                walked += 1
                problem = token_verdict(expected, answer, state, who)
                if problem:
                    offenders.append(f"{method} {path} with {which} {kind} token ({endpoint}) as {who}: {problem}")
    return walked


def _snapshot(config, state: State) -> dict:
    with database("users", config).begin() as s:
        users = {str(cu.id): (cu.status, cu.invitation_id, cu.name, cu.email, cu.updated_at)
                 for cu in s.scalars(select(users_models.ClientUser)
                                     .where(users_models.ClientUser.id.in_(state.beta_client_user_ids)))}
        job = s.get(users_models.ImportJob, state.beta_job_id)
        company_job = s.get(users_models.ImportJob, state.beta_company_job_id)
        company = s.get(users_models.Company, state.beta_company_id)
        staff = {str(m.id): (m.status, m.role, m.identity_id, m.updated_at)
                 for m in s.scalars(select(users_models.StaffMember)
                                    .where(users_models.StaffMember.id.in_(state.beta_staff_member_ids)))}
        snapshot = {"users": users, "job": (job.status, job.total_rows), "staff": staff,
                    "company job": (company_job.status, company_job.total_rows),
                    "company": (company.name, company.document, company.active),
                    "departments": sorted(s.execute(select(users_models.Department.id, users_models.Department.name,
                                                           users_models.Department.removed_at)
                                                    .where(users_models.Department.firm_id == job.firm_id)).all())}
    with database("auth", config).begin() as s:
        snapshot["passwords"] = dict(s.execute(text("SELECT email, password_hash FROM identities")).all())
        snapshot["links verified"] = [e for e in s.execute(text("SELECT envelope FROM outbox")).scalars()
                                      if (e if isinstance(e, dict) else {}).get("type") == "link.verified"]
        snapshot["sign-ups confirmed"] = [e for e in s.execute(text("SELECT envelope FROM outbox")).scalars()
                                          if (e if isinstance(e, dict) else {}).get("type") == "firm_signup.confirmed"]
    return snapshot


def walk(stage: Stage, state: State) -> None:
    config, apps = stage.config, stage.apps
    visitors = {who: stage.browser(f"10.77.0.{n}") for n, who in enumerate(VISITORS, start=1)}
    for who, person in VISITORS.items():
        if person:
            sign_in(visitors[who], person)
    bruno = stage.browser("10.77.0.20")
    sign_in(bruno, "bruno")
    claims = KeyRing(config.keys_dir).verify("auth", bruno.session_cookie(), audience=SESSION_AUDIENCE)
    state.beta_values["sid"] = state.insider_values["sid"] = [claims["sid"]]
    forged = KeyRing(config.keys_dir).sign("invitations", {k: claims[k] for k in ("sub", "sid", "email", "name")},
                                           audience=SESSION_AUDIENCE, ttl=timedelta(hours=1))
    visitors["forged"].put_session_cookie(forged)
    offenders: list[str] = []
    outsider_plan, _public = plan(apps, state, offenders)
    insider_plan, _ = insider_requests(apps, state, offenders)
    before = _snapshot(config, state)

    # Sanity: the visitors are who they should be (a broken login would make every 404 pass).
    assert visitors["staff"].fetch("GET", f"/e/{state.alfa_slug}/configuracoes/usuarios-de-clientes").status == 200
    assert visitors["client"].fetch("GET", f"/e/{state.alfa_slug}/").status == 200
    assert visitors["beta_staff"].fetch("GET", f"/e/{state.beta_slug}/configuracoes/usuarios-de-clientes").status == 200
    assert visitors["beta_client"].fetch("GET", f"/e/{state.beta_slug}/").status == 200
    # Eduardo may send documents (his "own" on Enviar documentos ao escritório is the form itself)
    assert visitors["beta_client"].fetch("GET", f"/documentos/e/{state.beta_slug}/enviar").status == 200
    irene_list = visitors["beta_colaborador"].fetch("GET", f"/e/{state.beta_slug}/configuracoes/usuarios-de-clientes")
    assert irene_list.status == 200 and JOANA[0] in irene_list.body  # her carteira's client: the 404s are the carteira
    assert visitors["beta_colaborador"].fetch(
        "GET", f"/e/{state.beta_slug}/configuracoes/usuarios-de-clientes/{state.joana_client_user_id}").status == 200
    assert bruno.fetch("GET", f"/e/{state.beta_slug}/configuracoes/auditoria").status == 200

    walked = 0
    for who, browser in visitors.items():
        token = csrf_token(browser.fetch("GET", "/auth/entrar").body)
        for req in insider_plan if who in INSIDERS else outsider_plan:
            if req.own_slug and who in ("anonymous", "forged"):
                continue
            if req.own_slug:
                expected = EXPECTED_OWN_SLUG[who]
            elif who in INSIDERS and req.endpoint in FIRM_AS_OBJECT:
                expected = "own"
            else:
                expected = EXPECTED[req.cls][who]
            if who in INSIDERS and expected == "own" and req.method == "POST":
                continue  # Beta's own people may do this: doing it would change Beta's data
            answer = browser.fetch(req.method, req.url, {"csrf_token": token} if req.method == "POST" else None)
            walked += 1
            problem = verdict(expected, answer, state, who)
            if problem:
                offenders.append(f"{req.method} {req.url} ({req.endpoint}) as {who}: {problem}")
    walked_tokens = walk_tokens({who: visitors[who] for who in VISITORS if who != "forged"}, state, offenders)
    stage.settle(lambda: True, "the services never went quiet after the walk")

    # Nothing the walk did changed Beta's data, anybody's password, nor ended Bruno's session;
    # another person's ticket linked nobody.
    after = _snapshot(config, state)
    for part in before:
        if after[part] != before[part]:
            offenders.append(f"the walk changed {part}")
    if bruno.fetch("GET", "/auth/minha-conta/sessoes").status != 200:
        offenders.append("Bruno's session was ended by the walk")
    assert walked > 3 * len(CLASS_OF), "the walk requested fewer routes than classified"
    assert walked_tokens >= 3 * len(TOKEN_ROUTES), "the walk requested fewer token routes than listed"
    assert not offenders, f"routes that answer what they must not ({stage.name}):\n  " + "\n  ".join(offenders)


def test_no_route_gives_another_firm_s_data_or_lets_anonymous_in(in_process_stage):
    walk(in_process_stage, build_state(in_process_stage))


@pytest.mark.distributed
def test_no_route_gives_another_firm_s_data_through_the_gateway(gateway_stage):
    """The same walk on the distributed stack: every request through nginx to the services."""
    walk(gateway_stage, build_state(gateway_stage))


def test_every_token_route_is_walked(in_process_stage):
    """Every PUBLIC endpoint guarded by a token or ticket, and every rule with a <token>, is in
    TOKEN_ROUTES (a new one must be added there)."""
    guarded = {e for e, why in PUBLIC.items() if "token" in why or "ticket" in why}
    with_token = {rule.endpoint for _svc, rule in _rules(in_process_stage.apps) if "token" in rule.arguments}
    assert guarded | with_token == {endpoint for endpoint, *_ in TOKEN_ROUTES}


# The settings areas of issue 9 (Empresas, Departamentos, Equipe, Usuários de Clientes and the
# import pages they share): every route of theirs must be walked, both ways.
FIRM_SETTINGS_VIEWS = ("companies", "departments", "team", "client_users", "imports")
# Path variables naming what a Colaborador's carteira bounds (or what only admins reach)
CARTEIRA_OBJECTS = {"client_user_id", "job_id", "company_id"}


def test_every_route_of_the_firm_s_settings_is_walked_both_ways(in_process_stage):
    """Every route of services/users/views/{companies,departments,team,client_users,imports}.py,
    found in the users app's url_map (imports.py declares none: its pages are the routes of each
    area's ImportPages), is in the walk with each of its methods: with Beta's objects under
    Beta's slug for everybody, and — when it names an object — with the other firm's objects under
    a firm's own slug, for Alfa's people and for Beta's. A route naming a client user, an import
    job or a company answers 404 to a Colaborador whose carteira does not hold it."""
    import importlib

    from services.users.views import imports as import_views
    stage = in_process_stage
    state = build_state(stage)
    app = stage.apps["users"]
    state.beta_values["sid"] = state.insider_values["sid"] = ["x"]  # (auth's session route: not ours here)
    offenders: list[str] = []
    outsider, _ = plan(stage.apps, state, offenders)
    insider, _ = insider_requests(stage.apps, state, offenders)
    assert not offenders, offenders
    modules = {f"services.users.views.{name}" for name in FIRM_SETTINGS_VIEWS}
    rules = [rule for rule in app.url_map.iter_rules() if app.view_functions[rule.endpoint].__module__ in modules]
    declared = {rule.endpoint for rule in rules}
    for name in FIRM_SETTINGS_VIEWS:  # the import pages of every area are among them
        for pages in vars(importlib.import_module(f"services.users.views.{name}")).values():
            if isinstance(pages, import_views.ImportPages):
                assert {pages.new, pages.job, pages.start} <= declared, pages
    assert {app.view_functions[e].__module__ for e in declared} == modules - {"services.users.views.imports"}
    walked = {(r.endpoint, r.method, r.own_slug, side) for side, requests in (("outsider", outsider),
                                                                               ("insider", insider))
              for r in requests}
    missing = []
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            variants = [False, True] if rule.arguments - FIRM_VARIABLES else [False]
            missing += [f"{method} {rule.rule} ({side}{', IDOR' if idor else ''})"
                        for side in ("outsider", "insider") for idor in variants
                        if (rule.endpoint, method, idor, side) not in walked]
        if rule.arguments & CARTEIRA_OBJECTS:
            assert EXPECTED[CLASS_OF[rule.endpoint]]["beta_colaborador"] == "404", rule.rule
    assert not missing, "routes the walk does not request:\n  " + "\n  ".join(missing)
    assert len(rules) >= 30 and {m for r in rules for m in r.methods} >= {"GET", "POST"}


def test_the_walk_catches_an_unguarded_route(in_process_stage):
    """The walk is able to fail: a route added without its firm check is reported, and so is a
    new route nobody classified."""
    stage = in_process_stage
    state = build_state(stage)
    config, apps = stage.config, stage.apps

    def leaky(slug, client_user_id):
        with database("users", config).begin() as s:
            cu = s.get(users_models.ClientUser, uuid.UUID(client_user_id))
            return cu.name
    apps["users"].add_url_rule("/e/<slug>/vazamento/<client_user_id>", "users.client_user_detail_leaky", leaky)
    apps["users"].add_url_rule("/sem-classe", "users.unclassified", lambda: "ok")
    offenders: list[str] = []
    state.beta_values["sid"] = ["x"]
    CLASS_OF["users.client_user_detail_leaky"] = "firm_staff"
    try:
        requests, _public = plan(apps, state, offenders)
        assert any("/sem-classe" in o and "not classified" in o for o in offenders)
        browser = stage.browser("10.77.0.9")
        sign_in(browser, "ana")
        leaks = []
        for req in requests:
            if req.endpoint == "users.client_user_detail_leaky":
                expected = EXPECTED_OWN_SLUG["staff"] if req.own_slug else EXPECTED[req.cls]["staff"]
                problem = verdict(expected, browser.fetch("GET", req.url), state)
                if problem:
                    leaks.append(problem)
        assert leaks and any("Eduardo Teixeira" in p for p in leaks), leaks
    finally:
        del CLASS_OF["users.client_user_detail_leaky"]


def test_the_token_walk_catches_a_token_route_that_accepts_a_voided_token(in_process_stage):
    """The token walk is able to fail: a reset page that forgets to check its token is reported."""
    stage = in_process_stage
    state = build_state(stage)
    offenders: list[str] = []
    view = stage.apps["auth"].view_functions["auth.reset_password"]
    stage.apps["auth"].view_functions["auth.reset_password"] = lambda token: "<form>Nova senha</form>"
    try:
        browser = stage.browser("10.77.0.10")
        walk_tokens({"anonymous": browser}, state, offenders)
    finally:
        stage.apps["auth"].view_functions["auth.reset_password"] = view
    assert any("voided reset token" in o and "expected the invalid-link page" in o for o in offenders), offenders
    assert any("garbage reset token" in o for o in offenders), offenders


@pytest.mark.parametrize("kind", ["pending", "superseded", "staff"])
def test_linking_page_of_an_unlinked_invitation_of_another_firm_is_404(in_process_stage, kind):
    stage = in_process_stage
    state = build_state(stage)
    problems = []
    for who, ip in (("ana", "10.77.1.2"), ("diana", "10.77.1.3")):
        browser = stage.browser(ip)
        sign_in(browser, who)
        answer = browser.fetch("GET", f"/vinculando/{state.unlinked_invitations[kind]}")
        problem = verdict("404", answer, state)
        if problem:
            problems.append(f"{who}: {problem}")
    assert not problems, problems

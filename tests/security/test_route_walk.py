"""Every route of every service, requested as somebody who must not get the other firm's data.

The four apps run on one origin (the `gateway` fixture); the state is built through the
services' own functions: firms Alfa (admin Ana) and Beta (admin Bruno), companies of each,
Diana a client of Alfa only, Eduardo a client of Beta only, Carlos a client of both, a
pending invitation at Beta (Fábio), an import job at Beta, real auth sessions.

The routes are not listed by hand: they come from each app's `url_map`. Each rule is either
PUBLIC (with the reason) or belongs to a route class whose expected outcome per visitor is in
EXPECTED; a new route that is in neither fails the walk, and so does a new URL variable for
which the walk has no value of Beta's. Each rule is requested, with Beta's values for its
variables, as Ana (staff of Alfa), as Diana (client of Alfa only), as an anonymous visitor and
with a session cookie naming Bruno but signed by another service's key — and, for rules that name a firm object, with Alfa's own slug and Beta's object (the IDOR
case). POSTs carry a valid CSRF token. The walk collects every deviation and fails once,
with a readable list of offenders. Afterwards Beta's data is checked unchanged.
"""
from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.auth import services as auth_services
from services.common.config import SERVICES
from services.common.keys import KeyRing
from services.common.runtime import database
from services.common.sessions import SESSION_AUDIENCE
from services.common.testing import build_gateway, csrf_token
from services.users import models as users_models
from services.users import services as users_services
from services.users.imports import csv_bytes, read_rows
from services.users.tests.conftest import make_cnpj

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
    "invitations.open_invitation": "the e-mailed link, guarded by its random token",
    "notifier.mailbox": "dev mailbox: exists only when no SMTP server is configured (embedded/dev mode); "
                        "production has BALCAO_SMTP_URL set and the route answers 404",
    "notifier.message": "dev mailbox message (dev-only, as above)",
    "notifier.message_html": "dev mailbox message HTML (dev-only, as above)",
}

# Route classes → what each visitor must get. "login": a redirect to /auth/entrar.
# "404": not found, exactly like a missing object. "own": the caller's own account/firm
# (any status below 500, never a redirect into or a body with the other firm's data).
# "forged": a session cookie naming Bruno (Beta's admin) but signed with another service's key.
EXPECTED = {
    "firm":         {"anonymous": "login", "forged": "login", "staff": "404", "client": "404"},  # /e/<slug>/ of Beta
    "firm_staff":   {"anonymous": "login", "forged": "login", "staff": "404", "client": "404"},  # Beta's staff pages
    "own_account":  {"anonymous": "login", "forged": "login", "staff": "own", "client": "own"},  # Minha conta, home
    "other_object": {"anonymous": "login", "forged": "login", "staff": "404", "client": "404"},  # Beta's sid/invitation
}
# The IDOR case: Alfa's own slug with a Beta object id in the URL.
EXPECTED_OWN_SLUG = {"staff": "404", "client": "404"}

CLASS_OF = {
    "users.index": "own_account",
    "users.switch_firm": "other_object",
    "users.linking": "other_object",
    "users.firm_home": "firm",
    "users.client_users": "firm_staff",
    "users.client_user_new": "firm_staff",
    "users.client_user_detail": "firm_staff",
    "users.client_user_edit": "firm_staff",
    "users.client_user_deactivate": "firm_staff",
    "users.client_user_delete": "firm_staff",
    "users.client_user_reactivate": "firm_staff",
    "users.client_user_resend": "firm_staff",
    "users.import_new": "firm_staff",
    "users.client_users_export": "firm_staff",
    "users.audit_log": "firm_staff",
    "users.security_settings": "firm_staff",
    "users.my_firms": "own_account",
    "users.my_firm_default": "other_object",
    "users.my_firm_leave": "other_object",
    "users.import_job": "firm_staff",
    "users.import_start": "firm_staff",
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


# --------------------------------------------------------------------------- the state

PASSWORDS = {"ana": "Ana-Alfa-Senha-91", "bruno": "Bruno-Beta-Senha-37", "diana": "Diana-Senha-Forte-20",
             "eduardo": "Eduardo-Senha-Forte-31", "carlos": "Carlos-Senha-Forte-58"}
EMAILS = {"ana": "ana@alfa.example", "bruno": "bruno@beta.example", "diana": "diana@cliente-alfa.example",
          "eduardo": "eduardo@cliente-beta.example", "carlos": "carlos@cliente.example"}
NAMES = {"ana": "Ana Souza", "bruno": "Bruno Lima", "diana": "Diana Prado", "eduardo": "Eduardo Teixeira",
         "carlos": "Carlos Pereira"}
# Text only Beta's pages contain: none of it may reach Ana or Diana.
BETA_MARKERS = ("Contabilidade Beta", "Oficina Motor Forte", "Eduardo Teixeira", "eduardo@cliente-beta.example",
                "bruno@beta.example", "Fábio Beta", "fabio@cliente-beta.example", "importacao-beta.csv")


@dataclass
class State:
    alfa_slug: str
    beta_slug: str
    # variable name → Beta's values for it (every one is requested)
    beta_values: dict[str, list[str]] = field(default_factory=dict)
    beta_client_user_ids: list[uuid.UUID] = field(default_factory=list)
    beta_job_id: uuid.UUID | None = None
    bruno_sid: str = ""
    unlinked_invitations: dict[str, uuid.UUID] = field(default_factory=dict)


def _identity(config, who: str):
    with database("auth", config).begin() as s:
        return auth_services.register_identity(s, email=EMAILS[who], name=NAMES[who], password=PASSWORDS[who]).id


def _client_user(session, firm, who, company):
    return users_services.register_client_user(session, firm=firm, name=NAMES.get(who, who), email=EMAILS.get(who, who),
                                               company_ids=[company.id], access="now")


class Browser(Client):
    """A browser with its own cookies and its own client IP (rate limits are per IP)."""

    def __init__(self, app, ip: str):
        super().__init__(app, Response, use_cookies=True)
        self.ip = ip

    def open(self, *args, **kwargs):
        kwargs["environ_base"] = {"REMOTE_ADDR": self.ip, **(kwargs.get("environ_base") or {})}
        return super().open(*args, **kwargs)


def sign_in(browser: Browser, who: str) -> None:
    html = browser.get("/auth/entrar").get_data(as_text=True)
    response = browser.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": EMAILS[who],
                                                  "password": PASSWORDS[who]})
    assert response.status_code == 303, (who, response.status_code, response.get_data(as_text=True)[:500])
    assert browser.get_cookie("balcao_session") is not None


@pytest.fixture
def state(config, bus) -> State:
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
        members = {  # (firm, who) → client user id
            ("alfa", "diana"): _client_user(s, alfa, "diana", alfa_company).id,
            ("alfa", "carlos"): _client_user(s, alfa, "carlos", alfa_company).id,
            ("beta", "eduardo"): _client_user(s, beta, "eduardo", beta_company).id,
            ("beta", "carlos"): _client_user(s, beta, "carlos", beta_company).id,
        }
        fabio = users_services.register_client_user(s, firm=beta, name="Fábio Beta", email="fabio@cliente-beta.example",
                                                    company_ids=[beta_company.id], access="now").id
        firms = {"alfa": alfa.id, "beta": beta.id}
        alfa_slug, beta_slug = alfa.slug, beta.slug
    bus.pump()  # invitations are created (invitations service) and recorded back in users
    invitations = {}
    with users_db.begin() as s:
        for (firm, who), cu_id in members.items():
            cu = s.get(users_models.ClientUser, cu_id)
            assert cu.invitation_id is not None, "the invitation chain did not run"
            invitations[(firm, who)] = cu.invitation_id
            assert users_services.grant_membership(s, firm_id=firms[firm], client_user_id=cu_id,
                                                   identity_id=ids[who], invitation_id=cu.invitation_id)
        fabio_invitation = s.get(users_models.ClientUser, fabio).invitation_id
        beta_firm = s.get(users_models.Firm, firms["beta"])
        rows = read_rows("importacao-beta.csv", io.BytesIO(csv_bytes(
            [["Nome", "CPF", "Telefone", "E-mail", "Empresas"], ["Gabriel Beta", "", "", "gabriel@beta.example", ""]])))
        job_id = users_services.create_import_job(s, firm=beta_firm, identity_id=ids["bruno"],
                                                  filename="importacao-beta.csv", rows=rows).id
    bus.pump()
    st = State(alfa_slug=alfa_slug, beta_slug=beta_slug, beta_job_id=job_id,
               beta_client_user_ids=[members[("beta", "eduardo")], members[("beta", "carlos")], fabio])
    st.beta_values = {
        "slug": [beta_slug],
        "client_user_id": [str(i) for i in st.beta_client_user_ids],
        "job_id": [str(job_id)],
        # linked invitations of Beta's clients, and one still pending (addressed to Fábio)
        # the invitations of Beta's linked clients (Beta's invitations not linked yet: see
        # test_linking_page_of_an_unlinked_invitation_of_another_firm_is_404)
        "invitation_id": [str(invitations[("beta", "eduardo")]), str(invitations[("beta", "carlos")])],
    }
    st.unlinked_invitations = {"pending": fabio_invitation}
    with users_db.begin() as s:  # Fábio's invitation is resent: the first one is superseded
        cu = s.get(users_models.ClientUser, fabio)
        users_services.resend_invitation(s, firm=s.get(users_models.Firm, firms["beta"]), client_user=cu,
                                         cooldown_seconds=0)
    bus.pump()
    with users_db.begin() as s:
        st.unlinked_invitations["superseded"] = fabio_invitation
        st.unlinked_invitations["pending"] = s.get(users_models.ClientUser, fabio).invitation_id
    assert st.unlinked_invitations["pending"] != fabio_invitation
    return st


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


def plan(apps, state: State, offenders: list[str]) -> tuple[list[Request], list[str]]:
    """Every (rule, method, Beta values) to request; unclassified rules become offenders."""
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
        missing = [v for v in rule.arguments if v not in state.beta_values]
        if missing:
            offenders.append(f"{svc} {rule.rule}: no value of Beta's for {missing}")
            continue
        for method in methods:
            if (rule.endpoint, method) in PUBLIC_METHODS:
                continue
            for url in _urls(rule, state.beta_values):
                query = QUERY.get(rule.endpoint)
                requests.append(Request(rule.endpoint, method,
                                        url + ("?" + query.format(slug=state.beta_slug) if query else ""), cls))
            if "slug" in rule.arguments and rule.arguments - FIRM_VARIABLES:
                own = {**state.beta_values, "slug": [state.alfa_slug]}
                for url in _urls(rule, own):
                    requests.append(Request(rule.endpoint, method, url, cls, own_slug=True))
    requests.sort(key=lambda r: r.endpoint in LAST)
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


def verdict(expected: str, response, state: State) -> str | None:
    """None when the response is what is due, else what went wrong."""
    status = response.status_code
    body = response.get_data(as_text=True)
    location = response.headers.get("Location", "")
    if expected == "login":
        if status in (301, 302, 303, 307, 308) and urlsplit(location).path == "/auth/entrar":
            return None
        return f"expected a redirect to /auth/entrar, got {status} {location}".strip()
    leak = [m for m in BETA_MARKERS if m in body]
    if status in (301, 302, 303, 307, 308) and f"/e/{state.beta_slug}/" in location:
        return f"redirected into Beta: {status} {location}"
    if leak:
        return f"Beta's data in the answer ({status}): {leak}"
    if expected == "404":
        return None if status == 404 else f"expected 404, got {status} {location}".strip()
    if expected == "own":
        return None if status < 500 else f"server error {status}"
    raise AssertionError(f"unknown expectation {expected}")


def _snapshot(config, state: State) -> dict:
    with database("users", config).begin() as s:
        users = {str(cu.id): (cu.status, cu.invitation_id, cu.name, cu.email, cu.updated_at)
                 for cu in s.scalars(select(users_models.ClientUser)
                                     .where(users_models.ClientUser.id.in_(state.beta_client_user_ids)))}
        job = s.get(users_models.ImportJob, state.beta_job_id)
        return {"users": users, "job": (job.status, job.total_rows)}


def test_no_route_gives_another_firm_s_data_or_lets_anonymous_in(config, bus, state):
    dispatcher, apps = build_gateway(config)
    visitors = {"anonymous": Browser(dispatcher, "10.77.0.1"), "forged": Browser(dispatcher, "10.77.0.5"),
                "staff": Browser(dispatcher, "10.77.0.2"), "client": Browser(dispatcher, "10.77.0.3")}
    sign_in(visitors["staff"], "ana")
    sign_in(visitors["client"], "diana")
    bruno = Browser(dispatcher, "10.77.0.4")
    sign_in(bruno, "bruno")
    claims = KeyRing(config.keys_dir).verify("auth", bruno.get_cookie("balcao_session").value,
                                             audience=SESSION_AUDIENCE)
    state.beta_values["sid"] = [claims["sid"]]
    forged = KeyRing(config.keys_dir).sign("invitations", {k: claims[k] for k in ("sub", "sid", "email", "name")},
                                           audience=SESSION_AUDIENCE, ttl=timedelta(hours=1))
    visitors["forged"].set_cookie("balcao_session", forged)
    offenders: list[str] = []
    requests, _public = plan(apps, state, offenders)
    before = _snapshot(config, state)

    # Sanity: the visitors are who they should be (a broken login would make every 404 pass).
    assert visitors["staff"].get(f"/e/{state.alfa_slug}/configuracoes/usuarios-de-clientes").status_code == 200
    assert visitors["client"].get(f"/e/{state.alfa_slug}/").status_code == 200
    assert bruno.get(f"/e/{state.beta_slug}/").status_code == 200

    walked = 0
    for who, browser in visitors.items():
        token = csrf_token(browser.get("/auth/entrar").get_data(as_text=True))
        for req in requests:
            if req.own_slug and who in ("anonymous", "forged"):
                continue
            expected = EXPECTED_OWN_SLUG[who] if req.own_slug else EXPECTED[req.cls][who]
            if req.method == "POST":
                response = browser.post(req.url, data={"csrf_token": token})
            else:
                response = browser.get(req.url)
            walked += 1
            problem = verdict(expected, response, state)
            if problem:
                offenders.append(f"{req.method} {req.url} ({req.endpoint}) as {who}: {problem}")

    # Nothing the walk did changed Beta's data, nor ended Bruno's session.
    assert _snapshot(config, state) == before, "a request of Alfa's people changed Beta's data"
    assert bruno.get("/auth/minha-conta/sessoes").status_code == 200, "Bruno's session was ended by the walk"
    assert walked > 3 * len(CLASS_OF), "the walk requested fewer routes than classified"
    assert not offenders, "routes that answer what they must not:\n  " + "\n  ".join(offenders)


def test_the_walk_catches_an_unguarded_route(config, bus, state):
    """The walk is able to fail: a route added without its firm check is reported, and so is a
    new route nobody classified."""
    dispatcher, apps = build_gateway(config)

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
        browser = Browser(dispatcher, "10.77.0.9")
        sign_in(browser, "ana")
        leaks = []
        for req in requests:
            if req.endpoint == "users.client_user_detail_leaky":
                expected = EXPECTED_OWN_SLUG["staff"] if req.own_slug else EXPECTED[req.cls]["staff"]
                problem = verdict(expected, browser.get(req.url), state)
                if problem:
                    leaks.append(problem)
        assert leaks and any("Eduardo Teixeira" in p for p in leaks), leaks
    finally:
        del CLASS_OF["users.client_user_detail_leaky"]


@pytest.mark.parametrize("kind", ["pending", "superseded"])
def test_linking_page_of_an_unlinked_invitation_of_another_firm_is_404(config, bus, state, kind):
    dispatcher, _apps = build_gateway(config)
    problems = []
    for who, ip in (("ana", "10.77.1.2"), ("diana", "10.77.1.3")):
        browser = Browser(dispatcher, ip)
        sign_in(browser, who)
        response = browser.get(f"/vinculando/{state.unlinked_invitations[kind]}")
        problem = verdict("404", response, state)
        if problem:
            problems.append(f"{who}: {problem}")
    assert not problems, problems

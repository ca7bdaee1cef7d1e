"""Cadastre seu escritório: the self-service sign-up of a firm (BALCAO_FIRM_SIGNUP=open).

The form (auth) stores a pending sign-up and e-mails a confirmation link; the same answer whether or
not the e-mail has a login. The link confirms once, within 24 h: a new e-mail gets its login with the
form's password; an e-mail with a login confirms with that login's own password (and second factor),
which never changes. Then `firm_signup.confirmed` → users creates the firm (create_firm), and the
person lands signed in on the new firm's home — or learns that the CNPJ is already a firm's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select, update
from stdnum.br import cnpj as stdnum_cnpj

from services.auth import models, services
from services.common import events
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database
from services.users import consumers as users_consumers
from services.users import models as users_models
from services.users import services as users_services
from testsupport import count_queries, csrf_token

from .conftest import ANA, CARLOS, location_path, new_browser, recorded_events, session_claims

FORM = "/auth/cadastro-de-escritorio"
ALNUM_CNPJ = "12.abc.345/01de-35"  # an alphanumeric CNPJ (since July 2026), typed in lower case
GAMA = {"legal_name": "Contabilidade Gama Ltda", "cnpj": ALNUM_CNPJ, "admin_name": "Gabriela Dias",
        "email": "gabriela@gama.example", "password": "Gama-Senha-Forte-26", "password_confirmation": "Gama-Senha-Forte-26"}


def cnpj(base12: str) -> str:
    return base12 + stdnum_cnpj.calc_check_digits(base12)


def open_config(config):
    return dataclasses.replace(config, firm_signup=True)


def browser(config, *, ip="127.0.0.1"):
    """A browser on the product with sign-ups open."""
    client, _apps = new_browser(open_config(config), ip=ip)
    return client


def submit(client, **fields):
    html = client.get(FORM).get_data(as_text=True)
    return client.post(FORM, data={"csrf_token": csrf_token(html), **GAMA, **fields})


def signup_links(config) -> list[str]:
    """The confirmation links auth asked the notifier to e-mail (unsealed as the notifier does)."""
    from services.common.keys import KeyRing
    keyring = KeyRing(config.keys_dir)
    return [keyring.unseal(e["payload"]["sealed"])["link"] for e in recorded_events(database("auth", config))
            if e["type"] == "notification.email_requested" and e["payload"]["template"] == "firm_signup"]


def link_path(link: str) -> str:
    return urlsplit(link).path


def confirm(client, path, **fields):
    html = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(html), **fields})


def auth_events(config, event_type):
    return [e for e in recorded_events(database("auth", config)) if e["type"] == event_type]


def firms(config) -> list[users_models.Firm]:
    with database("users", config).begin() as s:
        return list(s.scalars(select(users_models.Firm)))


# --------------------------------------------------------------------------- closed (the default)

def test_closed_by_default_every_signup_route_is_404_and_nothing_links_to_them(browser_client, config):
    assert config.firm_signup is False
    login_page = browser_client.get("/auth/entrar").get_data(as_text=True)
    assert "Cadastre seu escritório" not in login_page and FORM not in login_page
    token = csrf_token(login_page)
    assert browser_client.get(FORM).status_code == 404
    assert browser_client.post(FORM, data={"csrf_token": token, **GAMA}).status_code == 404
    assert browser_client.get(FORM + "/confirmar/qualquer-coisa").status_code == 404
    assert browser_client.post(FORM + "/confirmar/qualquer-coisa", data={"csrf_token": token}).status_code == 404
    assert browser_client.get(f"/cadastro-de-escritorio/{uuid.uuid4()}").status_code == 404
    assert signup_links(config) == []


def test_a_link_of_a_signup_made_while_open_stops_working_once_closed(config):
    client = browser(config)
    assert submit(client).status_code == 200
    [link] = signup_links(config)
    closed, _apps = new_browser(config)
    assert closed.get(link_path(link)).status_code == 404
    assert client.get(link_path(link)).status_code == 200  # the same link, sign-ups open


def test_unknown_values_of_the_setting_are_refused(monkeypatch, tmp_path):
    from services.common.config import load_config
    monkeypatch.setenv("BALCAO_VAR_DIR", str(tmp_path))
    for value, expected in (("open", True), ("OPEN", True), ("closed", False), ("", False)):
        monkeypatch.setenv("BALCAO_FIRM_SIGNUP", value)
        assert load_config().firm_signup is expected
    monkeypatch.setenv("BALCAO_FIRM_SIGNUP", "abrir")
    with pytest.raises(ValueError, match="BALCAO_FIRM_SIGNUP"):
        load_config()


# --------------------------------------------------------------------------- the form

def test_the_login_page_links_to_the_form_when_open(config):
    client = browser(config)
    html = client.get("/auth/entrar").get_data(as_text=True)
    assert f'href="{FORM}"' in html and "Cadastre seu escritório" in html
    form = client.get(FORM).get_data(as_text=True)
    for label in ("Razão social", "CNPJ", "Nome", "E-mail", "Senha", "Confirme a senha"):
        assert f">{label}</label>" in form


def test_the_form_needs_its_csrf_token(config):
    client = browser(config)
    client.get(FORM)
    assert client.post(FORM, data=GAMA).status_code == 400
    assert client.post(FORM, data={"csrf_token": "forjado", **GAMA}).status_code == 400
    assert signup_links(config) == []


@pytest.mark.parametrize("fields,messages", [
    ({"cnpj": "11.111.111/1111-11"}, ["CNPJ inválido."]),
    ({"cnpj": "12.ABC.345/01DE-36"}, ["CNPJ inválido."]),
    ({"cnpj": ""}, ["Preencha este campo."]),
    ({"email": "gabriela@"}, ["Informe um e-mail válido."]),
    ({"legal_name": "   "}, ["Preencha este campo."]),
    ({"password": "curta", "password_confirmation": "curta"}, ["A senha deve ter pelo menos 8 caracteres."]),
    ({"password": "password123", "password_confirmation": "password123"}, ["Esta senha é muito comum."]),
    ({"password_confirmation": "Outra-Senha-Forte-26"}, ["As senhas não conferem."]),
    ({"admin_name": "Gabriela\x1bDias"}, ["caracteres de controle"]),
])
def test_bad_input_says_why_and_keeps_what_was_typed_but_the_password(config, fields, messages):
    client = browser(config)
    typed = {**GAMA, **fields}
    response = submit(client, **fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for message in messages:
        assert message in html
    for key in ("legal_name", "cnpj", "admin_name", "email"):
        if typed[key].strip() and "\x1b" not in typed[key]:
            assert f'value="{typed[key]}"' in html, key
    assert typed["password"] not in html and typed["password_confirmation"] not in html
    assert signup_links(config) == []
    with database("auth", config).begin() as s:
        assert s.scalar(select(models.FirmSignup.id)) is None


def test_an_alphanumeric_cnpj_is_accepted_in_any_case_and_stored_clean(config, auth_db):
    client = browser(config)
    response = submit(client)
    assert response.status_code == 200
    assert "Enviamos um link de confirmação para gabriela@gama.example." in response.get_data(as_text=True)
    with auth_db.begin() as s:
        row = s.scalars(select(models.FirmSignup)).one()
        assert (row.cnpj, row.legal_name, row.email) == ("12ABC34501DE35", "Contabilidade Gama Ltda",
                                                         "gabriela@gama.example")
    [request] = auth_events(config, "notification.email_requested")
    assert request["payload"]["context"] == {"name": "", "cnpj": "12.ABC.345/01DE-35", "expires_in_hours": "24"}
    assert request["payload"]["recipient"] == "gabriela@gama.example"


def test_the_token_and_the_password_are_stored_hashed_and_never_travel(config, auth_db):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 40
    with auth_db.begin() as s:
        row = s.scalars(select(models.FirmSignup)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.password_hash.startswith("$argon2id$")
        assert services.PASSWORD_HASHER.verify(row.password_hash, GAMA["password"])
        stored = json.dumps([str(v) for v in s.execute(select(models.FirmSignup.__table__)).one()])
    assert token not in stored and GAMA["password"] not in stored
    published = json.dumps(recorded_events(auth_db))
    assert token not in published and GAMA["password"] not in published and "$argon2" not in published


def test_the_answer_is_the_same_whether_or_not_the_email_has_a_login(config, make_identity, auth_db):
    make_identity(CARLOS)
    answers = []
    for email in (CARLOS["email"], "ninguem@exemplo.com.br"):
        client = browser(config)
        with count_queries(config, "auth") as counted:
            response = submit(client, email=email)
        answers.append((response.status_code, response.get_data(as_text=True).replace(email, "<e-mail>")))
        assert not any("identities" in statement for statement in counted.statements), \
            "the form must not look the e-mail up"
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and "Enviamos um link de confirmação para <e-mail>." in answers[0][1]
    assert [e["payload"]["recipient"] for e in auth_events(config, "notification.email_requested")] == [
        CARLOS["email"], "ninguem@exemplo.com.br"]


def test_the_form_is_rate_limited_per_ip_like_auth_s_other_forms(config, clock):
    client = browser(config, ip="203.0.113.9")
    statuses = [submit(client, email=f"pessoa{i}@gama.example").status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    assert "Muitas tentativas" in submit(client).get_data(as_text=True)
    other = browser(config, ip="203.0.113.10")
    assert submit(other).status_code == 200
    clock.advance(minutes=1)
    assert submit(client, email="depois@gama.example").status_code == 200


def test_one_address_gets_a_few_emails_an_hour_and_the_same_answer_after(config, clock):
    answers = []
    for n in range(5):
        client = browser(config, ip=f"198.51.100.{n + 1}")
        answers.append(submit(client).get_data(as_text=True))
    assert len(set(answers)) == 1
    assert len(signup_links(config)) == 3
    clock.advance(hours=1)
    submit(browser(config, ip="198.51.100.77"))
    assert len(signup_links(config)) == 4


# --------------------------------------------------------------------------- confirming: a new login

def test_a_new_email_confirms_gets_its_login_and_lands_on_the_new_firm(config, bus, keyring):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    page = client.get(link_path(link))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    for shown in ("Contabilidade Gama Ltda", "12.ABC.345/01DE-35", "Gabriela Dias", "gabriela@gama.example"):
        assert shown in html
    assert 'name="password"' not in html  # a new login: the form's password is the one
    assert firms(config) == [] and not auth_events(config, "identity.registered")  # nothing before the POST

    done = client.post(link_path(link), data={"csrf_token": csrf_token(html)})
    [confirmed] = auth_events(config, "firm_signup.confirmed")
    assert done.status_code == 303 and location_path(done) == f"/cadastro-de-escritorio/{confirmed['payload']['signup_id']}"
    claims = session_claims(client, keyring)
    assert claims is not None and claims["email"] == "gabriela@gama.example"
    with database("auth", config).begin() as s:
        identity = services.authenticate(s, email="gabriela@gama.example", password=GAMA["password"])
        assert identity is not None and identity.name == "Gabriela Dias"
        assert s.scalars(select(models.FirmSignup)).one().password_hash == ""  # wiped once used
    assert confirmed["payload"] == {"signup_id": confirmed["payload"]["signup_id"], "identity_id": str(identity.id),
                                    "email": "gabriela@gama.example", "admin_name": "Gabriela Dias",
                                    "legal_name": "Contabilidade Gama Ltda", "cnpj": "12ABC34501DE35",
                                    "ip": "127.0.0.1"}

    waiting = client.get(location_path(done))  # the event has not reached users yet
    assert waiting.status_code == 200 and "Criando o seu escritório" in waiting.get_data(as_text=True)
    bus.pump()
    [firm] = firms(config)
    landed = client.get(location_path(done))
    assert landed.status_code == 303 and location_path(landed) == f"/e/{firm.slug}/"
    home = client.get(f"/e/{firm.slug}/").get_data(as_text=True)
    assert "Escritório criado. Você é o Administrador de Contabilidade Gama Ltda." in home
    with database("users", config).begin() as s:
        member = s.scalars(select(users_models.StaffMember).where(users_models.StaffMember.firm_id == firm.id)).one()
        assert (member.identity_id, member.role, member.status, member.email) == (
            identity.id, "admin", "active", "gabriela@gama.example")
        departments = s.scalars(select(users_models.Department.name).where(users_models.Department.firm_id == firm.id)
                                .order_by(users_models.Department.position)).all()
        assert departments == list(users_models.DEFAULT_DEPARTMENTS)
        [entry] = s.scalars(select(users_models.AuditEntry).where(users_models.AuditEntry.firm_id == firm.id)).all()
        assert (entry.action, entry.actor_id, entry.actor_email, entry.target_name, entry.ip) == (
            "firm.created", identity.id, "gabriela@gama.example", "Contabilidade Gama Ltda", "127.0.0.1")
    assert (firm.name, firm.cnpj) == ("Contabilidade Gama Ltda", "12ABC34501DE35")
    audit = client.get(f"/e/{firm.slug}/configuracoes/auditoria").get_data(as_text=True)
    assert "Escritório criado pelo cadastro no site" in audit


def test_the_confirmation_needs_its_csrf_token_and_a_get_confirms_nothing(config):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    for _ in range(3):  # a mail scanner following the link
        assert client.get(link_path(link)).status_code == 200
    assert client.post(link_path(link), data={}).status_code == 400
    assert not auth_events(config, "firm_signup.confirmed") and not auth_events(config, "identity.registered")


def test_a_link_works_once(config):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    assert confirm(client, link_path(link)).status_code == 303
    again = browser(config, ip="192.0.2.44")
    reopened = again.get(link_path(link))
    assert reopened.status_code == 404 and "Link inválido ou expirado" in reopened.get_data(as_text=True)
    token = csrf_token(again.get("/auth/entrar").get_data(as_text=True))
    reposted = again.post(link_path(link), data={"csrf_token": token})
    assert reposted.status_code == 404
    assert len(auth_events(config, "firm_signup.confirmed")) == 1
    assert len(auth_events(config, "identity.registered")) == 1


def test_a_link_expires_after_24_hours(config, clock):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    clock.advance(hours=23, minutes=59)
    assert client.get(link_path(link)).status_code == 200
    clock.advance(minutes=1)
    expired = client.get(link_path(link))
    assert expired.status_code == 404 and "vale por 24 horas" in expired.get_data(as_text=True)
    token = csrf_token(client.get("/auth/entrar").get_data(as_text=True))
    assert client.post(link_path(link), data={"csrf_token": token}).status_code == 404
    assert not auth_events(config, "identity.registered")


def test_expired_signups_are_swept(config, clock, auth_db):
    submit(browser(config))
    clock.advance(hours=25)
    submit(browser(config, ip="192.0.2.50"), email="outra@gama.example")
    with auth_db.begin() as s:
        assert s.scalars(select(models.FirmSignup.email)).all() == ["outra@gama.example"]


def test_garbage_tokens_are_the_invalid_page(config):
    client = browser(config)
    for token in ("x", "a" * 43, "a" * 300):
        response = client.get(f"{FORM}/confirmar/{token}")
        assert response.status_code == 404 and "Link inválido ou expirado" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- confirming: an existing login

def test_an_email_with_a_login_confirms_with_its_own_password_which_never_changes(config, make_identity, bus):
    carlos = make_identity(CARLOS)
    client = browser(config)
    submit(client, email=CARLOS["email"])  # the form's password is another one
    [link] = signup_links(config)
    page = client.get(link_path(link)).get_data(as_text=True)
    assert "Você já tem acesso ao Portal do Cliente com o e-mail carlos@exemplo.com.br." in page
    assert 'name="password"' in page and "A senha digitada no cadastro não foi usada" in page

    for wrong in (GAMA["password"], "nada-a-ver-123"):  # not even the sign-up's own password
        refused = confirm(client, link_path(link), password=wrong)
        assert refused.status_code == 422
        assert "Senha incorreta. Nenhum escritório foi criado." in refused.get_data(as_text=True)
    empty = confirm(client, link_path(link))
    assert empty.status_code == 422 and "Informe a senha." in empty.get_data(as_text=True)
    assert not auth_events(config, "firm_signup.confirmed")

    done = confirm(client, link_path(link), password=CARLOS["password"])
    assert done.status_code == 303 and location_path(done).startswith("/cadastro-de-escritorio/")
    [confirmed] = auth_events(config, "firm_signup.confirmed")
    assert confirmed["payload"]["identity_id"] == str(carlos.id)
    assert not auth_events(config, "identity.registered")[1:]  # only Carlos's own registration, earlier
    with database("auth", config).begin() as s:
        assert services.authenticate(s, email=CARLOS["email"], password=CARLOS["password"]) is not None
        assert services.authenticate(s, email=CARLOS["email"], password=GAMA["password"]) is None
    bus.pump()
    [firm] = firms(config)
    assert location_path(client.get(location_path(done))) == f"/e/{firm.slug}/"


def test_wrong_passwords_on_the_confirmation_count_towards_the_login_s_lock(config, make_identity):
    make_identity(CARLOS)
    client = browser(config, ip="203.0.113.60")
    submit(client, email=CARLOS["email"])
    [link] = signup_links(config)
    for _ in range(10):
        confirm(client, link_path(link), password="senha-errada-de-novo")
    locked = confirm(client, link_path(link), password=CARLOS["password"])
    assert locked.status_code == 422 and "Conta bloqueada temporariamente" in locked.get_data(as_text=True)
    assert not auth_events(config, "firm_signup.confirmed")


def test_a_login_with_a_second_factor_is_asked_the_code_too(config, make_identity, clock, auth_db, keyring):
    carlos = make_identity(CARLOS)
    secret = pyotp.random_base32()
    with auth_db.begin() as s:
        s.execute(update(models.Identity).where(models.Identity.id == carlos.id).values(mfa_secret=secret))
    client = browser(config)
    submit(client, email=CARLOS["email"])
    [link] = signup_links(config)
    step = confirm(client, link_path(link), password=CARLOS["password"])
    assert location_path(step) == "/auth/verificacao" and session_claims(client, keyring) is None
    page = client.get("/auth/verificacao").get_data(as_text=True)
    assert "Para criar o escritório com a sua conta, confirme que é você." in page
    assert not auth_events(config, "firm_signup.confirmed")
    wrong = client.post("/auth/verificacao", data={"csrf_token": csrf_token(page), "code": "000000"})
    assert wrong.status_code == 422 and not auth_events(config, "firm_signup.confirmed")
    done = client.post("/auth/verificacao", data={"csrf_token": csrf_token(page),
                                                   "code": pyotp.TOTP(secret).at(clock())})
    [confirmed] = auth_events(config, "firm_signup.confirmed")
    assert location_path(done) == f"/cadastro-de-escritorio/{confirmed['payload']['signup_id']}"
    assert session_claims(client, keyring)["sub"] == str(carlos.id)


def test_a_login_created_meanwhile_is_not_overwritten(config, make_identity):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    page = client.get(link_path(link)).get_data(as_text=True)  # no login yet: no password asked
    make_identity({"email": GAMA["email"], "name": "Gabriela", "password": "Outra-Senha-Dela-77"})
    answer = client.post(link_path(link), data={"csrf_token": csrf_token(page)})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'name="password"' in html and "Você já tem acesso" in html
    assert not auth_events(config, "firm_signup.confirmed")
    with database("auth", config).begin() as s:
        assert services.authenticate(s, email=GAMA["email"], password="Outra-Senha-Dela-77") is not None


# --------------------------------------------------------------------------- a CNPJ that is already a firm's

def test_a_cnpj_that_is_already_a_firm_s_creates_nothing_and_the_person_is_told(config, bus):
    taken = cnpj("112223330001")
    with database("users", config).begin() as s:
        users_services.create_firm(s, name="Contabilidade Alfa", cnpj=taken, admin_identity_id=uuid.uuid4(),
                                   admin_name=ANA["name"], admin_email=ANA["email"])
    client = browser(config)
    sent = submit(client, cnpj=taken)
    assert sent.status_code == 200 and "Contabilidade Alfa" not in sent.get_data(as_text=True)  # strangers learn nothing
    [link] = signup_links(config)
    assert "Contabilidade Alfa" not in client.get(link_path(link)).get_data(as_text=True)
    done = confirm(client, link_path(link))
    bus.pump()
    refused = client.get(location_path(done))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "Já existe um escritório com este CNPJ no Balcão." in html
    assert "Contabilidade Alfa" not in html and ANA["email"] not in html
    assert [f.name for f in firms(config)] == ["Contabilidade Alfa"]


def test_the_landing_page_is_only_for_the_login_that_confirmed(config, bus, make_identity):
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    landing = location_path(confirm(client, link_path(link)))
    bus.pump()
    make_identity(CARLOS)
    stranger = browser(config, ip="192.0.2.7")
    html = stranger.get("/auth/entrar").get_data(as_text=True)
    stranger.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": CARLOS["email"],
                                        "password": CARLOS["password"]})
    answer = stranger.get(landing)
    assert answer.status_code == 404 and "Gama" not in answer.get_data(as_text=True)
    anonymous = browser(config, ip="192.0.2.8")
    assert location_path(anonymous.get(landing)).startswith("/auth/entrar?next=")


# --------------------------------------------------------------------------- the event, as a contract

def test_firm_signup_confirmed_is_in_the_catalogue_and_users_handles_it_once(config):
    spec = events.CATALOGUE["firm_signup.confirmed"]
    assert (spec.producers, spec.consumers, spec.version) == (("auth",), ("users",), 1)
    client = browser(config)
    submit(client)
    [link] = signup_links(config)
    confirm(client, link_path(link))
    [envelope] = auth_events(config, "firm_signup.confirmed")
    wire = json.loads(json.dumps(envelope))  # as it travels
    _envelope, payload = events.parse_envelope(wire)  # the consumer's side
    assert set(payload) == {"signup_id", "identity_id", "email", "admin_name", "legal_name", "cnpj", "ip"}
    handler = users_consumers.HANDLERS["firm_signup.confirmed"]
    users_db = database("users", config)
    assert handle_message(users_db, users_models.processed, "users", handler, wire, config=config)[0] == Outcome.HANDLED
    again = {**wire, "id": str(uuid.uuid4())}  # the same sign-up redelivered under another message id
    assert handle_message(users_db, users_models.processed, "users", handler, again, config=config)[0] == Outcome.HANDLED
    assert len(firms(config)) == 1
    # producers are strict; consumers ignore what they do not know
    with pytest.raises(events.ValidationError):
        events.validate_payload("firm_signup.confirmed", {**wire["payload"], "password": "x"})
    with pytest.raises(events.ValidationError):
        events.validate_payload("firm_signup.confirmed", {**wire["payload"], "cnpj": "12.ABC.345/01DE-35"})
    newer = {**wire, "payload": {**wire["payload"], "added_later": True}}
    assert "added_later" not in events.parse_envelope(newer)[1]


def test_the_pages_in_english(config):
    client = browser(config)
    client.set_cookie("balcao_locale", "en")
    assert "Sign up your firm" in client.get("/auth/entrar").get_data(as_text=True)
    html = submit(client, cnpj="123", email="x@").get_data(as_text=True)
    assert "Invalid CNPJ." in html and "Legal name (razão social)" in html and "Enter a valid e-mail." in html
    sent = submit(client).get_data(as_text=True)
    assert "We sent a confirmation link to gabriela@gama.example." in sent

"""A firm can require MFA of its staff: auth projects staff memberships and the firm's policy
(events from users); a staff member without TOTP enrols right after the password, before any
session exists. A firm can never turn off anyone's MFA."""
import re
import uuid

import pyotp
import pytest
from sqlalchemy import select

from services.auth.models import Identity
from services.common.messaging import record_event
from services.users import models as users_models
from testsupport import build_gateway, csrf_token, db_for

from .conftest import (
    ANA,
    CARLOS,
    location_path,
    login,
    new_browser,
    post_form,
    session_claims,
)
from .test_mfa import MFA, _enrol

REQUIRED = "/auth/verificacao-obrigatoria"


@pytest.fixture
def users_emit(config, bus):
    """Publish events as the users service does (its outbox), delivered to auth by the bus."""
    def emit(event_type, payload):
        with db_for(config, "users").begin() as s:
            record_event(s, users_models.outbox, event_type, payload)
        bus.pump()
    return emit


@pytest.fixture
def alfa_requires_mfa(users_emit, make_identity):
    ana = make_identity(ANA)
    firm_id = str(uuid.uuid4())
    users_emit("membership.granted", {"firm_id": firm_id, "firm_name": "Contabilidade Alfa",
                                      "identity_id": str(ana.id), "role": "admin"})
    users_emit("firm.mfa_policy_changed", {"firm_id": firm_id, "require_staff_mfa": True})
    return ana, firm_id


def _secret(html):
    return re.search(r'<code id="mfa-secret">([A-Z2-7]+)</code>', html).group(1)


def test_staff_of_a_firm_requiring_mfa_must_enrol_before_any_session(config, alfa_requires_mfa, keyring,
                                                                      outbox_events, clock):
    client, _apps = new_browser(config)
    response = login(client, email=ANA["email"], password=ANA["password"], next_="/e/alfa/")
    assert location_path(response) == REQUIRED
    assert session_claims(client, keyring) is None and outbox_events("identity.logged_in") == []
    # no session elsewhere meanwhile
    assert location_path(client.get("/auth/minha-conta/sessoes")).startswith("/auth/entrar")
    html = client.get(REQUIRED).get_data(as_text=True)
    assert "Verificação em duas etapas obrigatória" in html and "<svg" in html
    secret = _secret(html)
    bad = client.post(REQUIRED, data={"csrf_token": csrf_token(html), "code": "000000"})
    assert bad.status_code == 422 and "Código inválido" in bad.get_data(as_text=True)
    assert session_claims(client, keyring) is None
    done = client.post(REQUIRED, data={"csrf_token": csrf_token(html), "code": pyotp.TOTP(secret).at(clock())})
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and len(re.findall(r"<code>[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}</code>", page)) == 10
    assert 'href="/e/alfa/"' in page and "Continuar" in page
    assert session_claims(client, keyring)["sub"] == str(alfa_requires_mfa[0].id)
    assert len(outbox_events("identity.logged_in")) == 1
    assert client.get(REQUIRED).status_code == 303  # the pending state is gone
    # next login: the usual code step
    clock.advance(seconds=30)
    other, _apps = new_browser(config)
    assert location_path(login(other, email=ANA["email"], password=ANA["password"])) == "/auth/verificacao"


def test_the_pending_enrolment_expires(config, alfa_requires_mfa, clock):
    client, _apps = new_browser(config)
    login(client, email=ANA["email"], password=ANA["password"])
    clock.advance(minutes=16)
    assert location_path(client.get(REQUIRED)) == "/auth/entrar"


def test_policy_off_revoked_membership_and_clients_are_not_asked(config, alfa_requires_mfa, users_emit,
                                                                 make_identity, keyring):
    ana, firm_id = alfa_requires_mfa
    carlos = make_identity(CARLOS)
    users_emit("membership.granted", {"firm_id": firm_id, "firm_name": "Contabilidade Alfa",
                                      "identity_id": str(carlos.id), "role": "client"})
    client, _apps = new_browser(config)
    assert location_path(login(client, email=CARLOS["email"], password=CARLOS["password"])) == "/"
    users_emit("firm.mfa_policy_changed", {"firm_id": firm_id, "require_staff_mfa": False})
    assert location_path(login(client, email=ANA["email"], password=ANA["password"])) == "/"
    users_emit("firm.mfa_policy_changed", {"firm_id": firm_id, "require_staff_mfa": True})
    assert location_path(login(client, email=ANA["email"], password=ANA["password"])) == REQUIRED
    users_emit("membership.revoked", {"firm_id": firm_id, "identity_id": str(ana.id), "reason": "deactivated"})
    assert location_path(login(client, email=ANA["email"], password=ANA["password"])) == "/"


def test_a_login_both_staff_and_client_of_a_firm_keeps_the_policy_when_the_client_access_ends(
        config, alfa_requires_mfa, users_emit):
    """One login may be a client and a member of the team of the same firm: the end of the client
    access (membership.revoked with role "client") leaves the staff policy in force."""
    ana, firm_id = alfa_requires_mfa
    users_emit("membership.granted", {"firm_id": firm_id, "firm_name": "Contabilidade Alfa",
                                      "identity_id": str(ana.id), "role": "client"})
    users_emit("membership.revoked", {"firm_id": firm_id, "identity_id": str(ana.id), "reason": "deactivated",
                                      "role": "client"})
    client, _apps = new_browser(config)
    assert location_path(login(client, email=ANA["email"], password=ANA["password"])) == REQUIRED
    users_emit("membership.revoked", {"firm_id": firm_id, "identity_id": str(ana.id), "reason": "deactivated",
                                      "role": "admin"})
    assert location_path(login(client, email=ANA["email"], password=ANA["password"])) == "/"


def test_staff_of_a_firm_requiring_mfa_cannot_turn_it_off(config, make_identity, users_emit, clock):
    ana = make_identity(ANA)
    client, _apps = new_browser(config)
    login(client, email=ANA["email"], password=ANA["password"])
    page = post_form(client, MFA, MFA + "/ativar", {"password": ANA["password"]})
    secret = _secret(page.get_data(as_text=True))
    post_form(client, MFA, MFA + "/confirmar", {"code": pyotp.TOTP(secret).at(clock())})
    firm_id = str(uuid.uuid4())
    users_emit("membership.granted", {"firm_id": firm_id, "firm_name": "Contabilidade Alfa",
                                      "identity_id": str(ana.id), "role": "staff"})
    users_emit("firm.mfa_policy_changed", {"firm_id": firm_id, "require_staff_mfa": True})
    refused = post_form(client, MFA, MFA + "/desativar", {"password": ANA["password"]})
    assert refused.status_code == 422 and "não pode ser desativada" in refused.get_data(as_text=True)
    assert "Ativada" in client.get(MFA).get_data(as_text=True)


def test_no_route_or_event_disables_another_identitys_mfa(config, make_identity, users_emit, clock, auth_db):
    make_identity()
    secret, _codes = _enrol(_logged(config), clock)
    # 1. every event auth consumes, naming Carlos, leaves his MFA as it was
    with auth_db.begin() as s:
        carlos = s.scalars(select(Identity)).one()
        carlos_id = str(carlos.id)
    firm_id = str(uuid.uuid4())
    for role in ("client", "staff", "admin"):
        users_emit("membership.granted", {"firm_id": firm_id, "firm_name": "Alfa", "identity_id": carlos_id,
                                          "role": role})
    for flag in (True, False):
        users_emit("firm.mfa_policy_changed", {"firm_id": firm_id, "require_staff_mfa": flag})
    for reason in ("deactivated", "deleted", "left"):
        users_emit("membership.revoked", {"firm_id": firm_id, "identity_id": carlos_id, "reason": reason})
    with auth_db.begin() as s:
        assert s.get(Identity, uuid.UUID(carlos_id)).mfa_secret == secret
    # 2. the only route that removes MFA acts on the logged-in person: no identity in its URL or form
    _dispatcher, apps = build_gateway(config)
    removers = [rule for app in apps.values() for rule in app.url_map.iter_rules()
                if "desativar" in rule.rule and ("verificacao" in rule.rule or "mfa" in rule.endpoint)]
    assert [r.rule for r in removers] == [MFA + "/desativar"]
    assert removers[0].arguments == set()
    from services.auth.schemas import PasswordConfirmSchema
    assert set(PasswordConfirmSchema().fields) <= {"password", "csrf_token"}


def _logged(config):
    client, _apps = new_browser(config)
    assert login(client, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    return client


def test_the_enrolment_page_in_english(config, alfa_requires_mfa):
    client, _apps = new_browser(config)
    client.set_cookie("balcao_locale", "en")
    login(client, email=ANA["email"], password=ANA["password"])
    html = client.get(REQUIRED).get_data(as_text=True)
    assert "Two-step verification required" in html and "A firm you work at requires" in html

"""Issue 4 on the users side: ended sessions refused at once, the firm's audit log, the CSV
export, CPF/phone encrypted and masked, Minha conta › Meus escritórios, the staff MFA setting."""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.common import events
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message
from services.common.sessions import issue_session_token
from services.users import consumers, models, pii, services
from services.users.tests.conftest import Person, get_client_user, login, make_cpf, outbox_events, text_of, users_db
from testsupport import count_queries, csrf_token

LIST = "/e/{slug}/configuracoes/usuarios-de-clientes"
AUDIT = "/e/{slug}/configuracoes/auditoria"
SECURITY = "/e/{slug}/configuracoes/seguranca"
MY_FIRMS = "/minha-conta/escritorios"


def _page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def _login_sid(client, config, person: Person, sid: str) -> None:
    token = issue_session_token(KeyRing(config.keys_dir), identity_id=person.identity_id, email=person.email,
                                name=person.name, session_id=sid)
    client.set_cookie("balcao_session", token)


def _deliver(config, event_type: str, payload: dict) -> None:
    """An event from auth, handled by users exactly as the broker consumer does."""
    envelope = events.make_envelope(event_type, payload, correlation_id="cid-" + uuid.uuid4().hex[:8])
    outcome, info = handle_message(users_db(config), models.processed, "users", consumers.HANDLERS[event_type],
                                   envelope, config=config)
    assert outcome == Outcome.HANDLED, (outcome, info)


def _audit_entries(config, firm) -> list[models.AuditEntry]:
    with users_db(config).begin() as s:
        return list(s.scalars(select(models.AuditEntry).where(models.AuditEntry.firm_id == firm.id)
                              .order_by(models.AuditEntry.at, models.AuditEntry.id)))


def _new_user(config, firm, *, name="Diana Prado", email="diana@example.com", cpf=None, phone=None,
              access=None):
    with users_db(config).begin() as s:
        firm_row = s.get(models.Firm, firm.id)
        return services.register_client_user(s, firm=firm_row, name=name, email=email, cpf=cpf, phone=phone,
                                             access=access)


def _second_browser(browser_client):
    return Client(browser_client.application, Response, use_cookies=True)


# --------------------------------------------------------------------------- 1. sessions


def test_an_ended_session_is_refused_at_once(browser_client, config, world):
    _login_sid(browser_client, config, world.carlos, "sid-one")
    other = _second_browser(browser_client)
    _login_sid(other, config, world.carlos, "sid-two")
    home = f"/e/{world.alfa.slug}/"
    assert browser_client.get(home).status_code == 200
    token = csrf_token(_page(browser_client, MY_FIRMS))

    _deliver(config, "session.ended", {"identity_id": world.carlos.identity_id, "reason": "ended_by_user",
                                       "session_hashes": [hashlib.sha256(b"sid-one").hexdigest()]})
    response = browser_client.get(home)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/auth/entrar?next=/e/{world.alfa.slug}/"
    assert browser_client.get(MY_FIRMS).status_code == 303
    response = browser_client.post(f"{MY_FIRMS}/{world.alfa.slug}/padrao", data={"csrf_token": token})
    assert response.status_code == 401
    assert other.get(home).status_code == 200  # another session of the same person goes on
    # a repeated delivery changes nothing
    _deliver(config, "session.ended", {"identity_id": world.carlos.identity_id, "reason": "logout",
                                       "session_hashes": [hashlib.sha256(b"sid-one").hexdigest()]})
    with users_db(config).begin() as s:
        assert s.scalar(select(models.EndedSession.identity_id)) == world.carlos.identity_id


def test_the_ended_session_check_is_one_statement(browser_client, config, world):
    _login_sid(browser_client, config, world.carlos, "sid-count")
    url = f"/e/{world.alfa.slug}/"
    with count_queries(config, "users") as before:
        assert browser_client.get(url).status_code == 200
    with users_db(config).begin() as s:
        services.record_session_ended(s, identity_id=world.carlos.identity_id,
                                      session_hashes=[hashlib.sha256(b"other").hexdigest()])
    with count_queries(config, "users") as after:
        assert browser_client.get(url).status_code == 200
    assert before.count == after.count
    assert sum("ended_sessions" in q for q in after.statements) == 1


def test_ended_sessions_are_forgotten_once_their_tokens_expired(config, world):
    now = datetime.now(UTC)
    with users_db(config).begin() as s:
        services.record_session_ended(s, identity_id=world.carlos.identity_id, session_hashes=["a" * 64],
                                      ended_at=now - timedelta(hours=14))
        services.record_session_ended(s, identity_id=world.carlos.identity_id, session_hashes=["b" * 64],
                                      ended_at=now - timedelta(hours=11))
    assert consumers.prune_ended_sessions(config, now=now) == 1
    with users_db(config).begin() as s:
        assert list(s.scalars(select(models.EndedSession.session_hash))) == ["b" * 64]


def test_deactivating_a_client_takes_effect_on_their_next_request(browser_client, config, world):
    carlos = _second_browser(browser_client)
    login(carlos, config, world.carlos)
    home = f"/e/{world.alfa.slug}/"
    assert carlos.get(home).status_code == 200
    login(browser_client, config, world.ana)
    detail = LIST.format(slug=world.alfa.slug) + f"/{world.carlos_at_alfa.id}"
    token = csrf_token(_page(browser_client, detail))
    assert browser_client.post(detail + "/desativar", data={"csrf_token": token}).status_code == 303
    assert carlos.get(home).status_code == 404  # the very next request, same token
    assert carlos.get(f"/e/{world.beta.slug}/").status_code == 200


# --------------------------------------------------------------------------- 4. personal data


def test_cpf_and_phone_are_encrypted_at_rest_and_searchable_by_hash(config, world):
    cpf = make_cpf(456789)
    cu = _new_user(config, world.alfa, cpf=cpf, phone="(11) 98765-4321")
    with users_db(config).begin() as s:
        raw = s.execute(text("SELECT cpf, phone, cpf_hash FROM client_users WHERE email = 'diana@example.com'")).one()
    assert raw.cpf.startswith("v1:") and cpf not in raw.cpf
    assert raw.phone.startswith("v1:") and "98765" not in raw.phone
    assert raw.cpf_hash == pii.cpf_hash(cpf) and cpf not in raw.cpf_hash
    assert get_client_user(config, cu.id).cpf == cpf  # the application reads the clear value
    # two encryptions of the same value differ (random nonce); tampering is detected
    cipher = pii.cipher_for(config)
    assert cipher.encrypt(cpf, purpose="cpf") != cipher.encrypt(cpf, purpose="cpf")
    from cryptography.exceptions import InvalidTag
    with pytest.raises(InvalidTag):
        cipher.decrypt(cipher.encrypt(cpf, purpose="cpf"), purpose="phone")


def test_mask_formats():
    assert pii.mask_cpf("12345678909") == "***.456.789-**"
    assert pii.mask_phone("+5511987654321") == "(**) *****-4321"
    assert pii.mask_phone("+551133334321") == "(**) ****-4321"
    assert pii.mask_cpf(None) == "" and pii.mask_phone("") == ""


def test_the_list_finds_a_cpf_in_any_formatting_and_shows_it_masked(browser_client, config, world):
    cpf = make_cpf(456789)
    cu = _new_user(config, world.alfa, cpf=cpf, phone="+5511987654321")
    _new_user(config, world.beta, cpf=cpf, name="Diana Beta", email="diana@beta.example")
    login(browser_client, config, world.ana)
    formatted = f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"
    for q in (cpf, formatted, " " + formatted + " "):
        html = _page(browser_client, LIST.format(slug=world.alfa.slug) + "?q=" + q)
        assert "Diana Prado" in html and "Carlos Souza" not in html and "Diana Beta" not in html, q
        body = re.search(r"<tbody>.*</tbody>", html, re.DOTALL).group(0)
        assert pii.mask_cpf(cpf) in body and formatted not in body and cpf not in body
    html = _page(browser_client, LIST.format(slug=world.alfa.slug) + "?q=" + make_cpf(1))
    assert "Diana Prado" not in html
    # full values for staff on the detail page (they may edit them)
    html = _page(browser_client, LIST.format(slug=world.alfa.slug) + f"/{cu.id}")
    assert formatted in html and "(11) 98765-4321" in html


def test_cpf_and_phone_never_reach_events_or_logs(browser_client, config, world, caplog):
    caplog.set_level(logging.DEBUG)
    cpf = make_cpf(987654)
    login(browser_client, config, world.ana)
    new = LIST.format(slug=world.alfa.slug) + "/novo"
    token = csrf_token(_page(browser_client, new))
    typed = {"csrf_token": token, "name": "Elisa Moraes", "cpf": cpf, "phone": "(21) 99876-5432",
             "email": "elisa@example.com", "access": "now", "step": "notificacoes",
             "company_ids": str(world.alfa_company.id)}
    response = browser_client.post(new, data=typed)
    assert response.status_code == 303
    cu_id = response.headers["Location"].rsplit("/", 1)[-1]
    edit = LIST.format(slug=world.alfa.slug) + f"/{cu_id}/editar"
    token = csrf_token(_page(browser_client, edit))
    browser_client.post(edit, data={**typed, "csrf_token": token, "cpf": make_cpf(111222), "phone": ""})
    browser_client.get(LIST.format(slug=world.alfa.slug) + "?q=" + cpf)
    with users_db(config).begin() as s:
        rows = [str(r) for r in s.execute(select(models.outbox)).all()]
        rows += [str(r) for r in s.execute(select(models.AuditEntry)).all()]
    assert rows
    secrets = (cpf, make_cpf(111222), "99876", "998765432", f"{cpf[:3]}.{cpf[3:6]}")
    for secret in secrets:
        assert not any(secret in row for row in rows), secret
        assert not any(secret in record.getMessage() or secret in str(record.__dict__)
                       for record in caplog.records), secret


# --------------------------------------------------------------------------- 2. audit log


def test_staff_actions_are_audited_with_actor_ip_and_correlation_id(browser_client, config, world):
    login(browser_client, config, world.ana)
    base = LIST.format(slug=world.alfa.slug)
    new = base + "/novo"
    token = csrf_token(_page(browser_client, new))
    response = browser_client.post(new, data={"csrf_token": token, "name": "Elisa Moraes", "cpf": make_cpf(5),
                                              "email": "elisa@example.com", "access": "later", "step": "notificacoes"},
                                   headers={"X-Request-ID": "req-create-1"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 303
    detail = response.headers["Location"]
    for action in ("/reenviar-convite", "/desativar", "/reativar", "/excluir"):
        browser_client.post(detail + action, data={"csrf_token": token})
    entries = _audit_entries(config, world.alfa)
    actions = [e.action for e in entries]
    assert actions == ["client_user.created", "client_user.invited", "client_user.invitation_resent",
                       "client_user.deactivated", "client_user.reactivated", "client_user.deleted"]
    first = entries[0]
    assert (first.actor_id, first.actor_name, first.actor_email) == (world.ana.identity_id, "Ana Lima",
                                                                     "ana@alfa.com.br")
    assert first.target_name == "Elisa Moraes" and str(first.target_id) == detail.rsplit("/", 1)[-1]
    assert first.ip == "203.0.113.9" and first.correlation_id == "req-create-1"
    assert all(e.correlation_id for e in entries)
    assert not _audit_entries(config, world.beta)


def test_edit_is_audited_with_the_changed_fields_only(browser_client, config, world):
    login(browser_client, config, world.ana)
    edit = LIST.format(slug=world.alfa.slug) + f"/{world.carlos_at_alfa.id}/editar"
    token = csrf_token(_page(browser_client, edit))
    browser_client.post(edit, data={"csrf_token": token, "name": "Carlos Souza Filho", "email": "carlos@example.com",
                                    "cpf": make_cpf(77), "company_ids": str(world.alfa_company.id)})
    entry = _audit_entries(config, world.alfa)[-1]
    assert entry.action == "client_user.edited" and sorted(entry.details["fields"]) == ["cpf", "name"]
    assert make_cpf(77) not in str(entry.details)


def test_staff_logins_are_audited_at_each_firm_where_they_are_staff(config, world):
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.beta.id), identity_id=world.ana.identity_id,
                                  name="Ana Lima", email="ana@alfa.com.br", role="staff")
    at = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    _deliver(config, "identity.logged_in", {"identity_id": world.ana.identity_id, "ip": "198.51.100.7", "at": at})
    _deliver(config, "identity.logged_in", {"identity_id": world.carlos.identity_id, "ip": "198.51.100.8",
                                            "at": at})  # a client: not the firms' business
    for firm in (world.alfa, world.beta):
        entries = [e for e in _audit_entries(config, firm) if e.action == "staff.logged_in"]
        assert len(entries) == 1, firm.name
        assert entries[0].actor_id == world.ana.identity_id and entries[0].ip == "198.51.100.7"
        assert entries[0].at == at and entries[0].correlation_id.startswith("cid-")


def test_audit_page_is_for_admins_only(browser_client, config, world):
    paula = Person(uuid.uuid4(), "paula@alfa.com.br", "Paula Reis")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=paula.identity_id,
                                  name=paula.name, email=paula.email, role="staff")
    url = AUDIT.format(slug=world.alfa.slug)
    for person, status in ((world.ana, 200), (paula, 404), (world.carlos, 404), (world.bruno, 404)):
        login(browser_client, config, person)
        assert browser_client.get(url).status_code == status, person.name
    browser_client.delete_cookie("balcao_session")
    assert browser_client.get(url).status_code == 303


def _many_entries(config, firm, n, *, start=0, action="client_user.edited", actor_name="Ana Lima",
                  day=datetime(2026, 11, 10, 15, 0, tzinfo=UTC)):
    with users_db(config).begin() as s:
        for i in range(start, start + n):
            cu = models.ClientUser(id=uuid.uuid4(), name=f"Alvo Número{i:03d}")
            services.record_audit(s, firm_id=firm.id, action=action, target=cu, at=day + timedelta(minutes=i),
                                  actor=services.Actor(uuid.uuid4(), actor_name, "x@alfa.com.br", "10.0.0.1"))


def test_audit_page_newest_first_paged_with_constant_statements(browser_client, config, world):
    login(browser_client, config, world.ana)
    url = AUDIT.format(slug=world.alfa.slug)
    _many_entries(config, world.alfa, 3)
    _page(browser_client, url)
    with count_queries(config, "users") as few:
        html = _page(browser_client, url)
    assert html.index("Alvo Número002") < html.index("Alvo Número001") < html.index("Alvo Número000")
    _many_entries(config, world.alfa, 70, start=3)
    with count_queries(config, "users") as many:
        html = _page(browser_client, url)
    assert html.count("Alvo Número") == 50 and "Alvo Número072" in html and "Alvo Número022" not in html
    assert few.count == many.count
    assert "configuracoes/auditoria?pagina=2" in html
    html = _page(browser_client, url + "?pagina=2")
    assert html.count("Alvo Número") == 23 and "Alvo Número000" in html


def test_audit_filters(browser_client, config, world):
    login(browser_client, config, world.ana)
    url = AUDIT.format(slug=world.alfa.slug)
    _many_entries(config, world.alfa, 2)
    _many_entries(config, world.alfa, 2, start=10, action="client_user.deleted", actor_name="Marcos Dias",
                  day=datetime(2026, 11, 20, 15, 0, tzinfo=UTC))
    html = _page(browser_client, url + "?acao=client_user.deleted")
    assert "Alvo Número010" in html and "Alvo Número000" not in html
    html = _page(browser_client, url + "?autor=marcos")
    assert "Alvo Número011" in html and "Alvo Número001" not in html and 'value="marcos"' in html
    html = _page(browser_client, url + "?alvo=n%C3%BAmero001")
    assert "Alvo Número001" in html and "Alvo Número000" not in html
    html = _page(browser_client, url + "?de=2026-11-15&ate=2026-11-20")
    assert "Alvo Número010" in html and "Alvo Número000" not in html
    html = _page(browser_client, url + "?ate=2026-11-10")
    assert "Alvo Número000" in html and "Alvo Número010" not in html
    html = _page(browser_client, url + "?de=31/02/2026&autor=Marcos", status=422)
    assert "Data inválida." in html and 'value="Marcos"' in html and 'value="31/02/2026"' in html


def test_the_audit_log_is_append_only(config, world):
    """The database refuses to change or remove an audit entry, whoever asks (a trigger of the
    users migrations, on SQLite and PostgreSQL): plain SQL and the ORM alike; inserting works."""
    from sqlalchemy.exc import DBAPIError
    with users_db(config).begin() as s:
        entry_id = services.record_audit(s, firm_id=world.alfa.id, action="client_user.deleted",
                                         target=world.carlos_at_alfa).id
    attempts = {
        "UPDATE": "UPDATE audit_entries SET action = 'client_user.created', target_name = 'Ninguém'",
        "UPDATE one row": f"UPDATE audit_entries SET actor_name = 'x' WHERE id = '{_sql_uuid(config, entry_id)}'",
        "DELETE": "DELETE FROM audit_entries",
        "DELETE one row": f"DELETE FROM audit_entries WHERE id = '{_sql_uuid(config, entry_id)}'",
    }
    if users_db(config).engine.dialect.name == "postgresql":
        attempts["TRUNCATE"] = "TRUNCATE audit_entries"
    refused = {}
    for name, sql in attempts.items():
        with pytest.raises(DBAPIError) as err, users_db(config).begin() as s:
            s.execute(text(sql))
        refused[name] = "audit_entries is append-only" in str(err.value)
    assert refused == {name: True for name in attempts}
    with pytest.raises(DBAPIError, match="append-only"), users_db(config).begin() as s:
        s.delete(s.get(models.AuditEntry, entry_id))
    with pytest.raises(DBAPIError, match="append-only"), users_db(config).begin() as s:
        s.get(models.AuditEntry, entry_id).action = "client_user.created"
    with users_db(config).begin() as s:
        [entry] = s.scalars(select(models.AuditEntry)).all()
        assert (entry.id, entry.action, entry.target_name) == (entry_id, "client_user.deleted", "Carlos Souza")
        services.record_audit(s, firm_id=world.alfa.id, action="client_user.created", target=world.carlos_at_alfa)
    with users_db(config).begin() as s:
        assert len(s.scalars(select(models.AuditEntry)).all()) == 2


def _sql_uuid(config, value: uuid.UUID) -> str:
    """How the Uuid column stores it: 32 hex digits on SQLite, the canonical form on PostgreSQL."""
    return str(value) if users_db(config).engine.dialect.name == "postgresql" else value.hex


def test_only_inserts_reach_the_audit_table(browser_client, config, world):
    login(browser_client, config, world.ana)
    base = LIST.format(slug=world.alfa.slug)
    with count_queries(config, "users") as statements:
        token = csrf_token(_page(browser_client, base + f"/{world.carlos_at_alfa.id}"))
        for action in ("/desativar", "/reativar", "/excluir"):
            browser_client.post(base + f"/{world.carlos_at_alfa.id}" + action, data={"csrf_token": token})
        browser_client.get(base + "/exportar.csv")
        browser_client.get(AUDIT.format(slug=world.alfa.slug))
    touching = [q.split()[0].upper() for q in statements.statements if "audit_entries" in q]
    assert "INSERT" in touching and set(touching) <= {"INSERT", "SELECT"}


# --------------------------------------------------------------------------- 3. export


def _csv(response):
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:]), delimiter=";"))


def test_export_csv_respects_the_search_and_is_audited(browser_client, config, world):
    cpf = make_cpf(456789)
    _new_user(config, world.alfa, cpf=cpf, phone="+5511987654321", name="Diana Prado")
    _new_user(config, world.alfa, name="=HYPERLINK Ruim", email="ruim@example.com")
    login(browser_client, config, world.ana)
    base = LIST.format(slug=world.alfa.slug)
    assert "Exportar CSV" in _page(browser_client, base)
    response = browser_client.get(base + "/exportar.csv", environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = _csv(response)
    assert rows[0] == ["Nome", "CPF", "Telefone", "E-mail", "Empresas", "Status"]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {"Carlos Souza", "Diana Prado", "'=HYPERLINK Ruim"}
    diana = by_name["Diana Prado"]
    assert diana[1] == f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}" and diana[2] == "(11) 98765-4321"
    assert by_name["Carlos Souza"][4] == "Padaria Pão Quente Ltda"
    rows = _csv(browser_client.get(base + "/exportar.csv?q=" + cpf))
    assert [r[0] for r in rows[1:]] == ["Diana Prado"]
    entries = [e for e in _audit_entries(config, world.alfa) if e.action == "client_users.exported"]
    assert [e.details for e in entries] == [{"rows": 3, "filtered": False}, {"rows": 1, "filtered": True}]
    assert entries[0].ip == "192.0.2.44" and entries[0].actor_id == world.ana.identity_id


def test_export_is_404_for_clients_and_other_firms(browser_client, config, world):
    login(browser_client, config, world.bruno)
    assert browser_client.get(LIST.format(slug=world.alfa.slug) + "/exportar.csv").status_code == 404
    login(browser_client, config, world.carlos)
    assert browser_client.get(LIST.format(slug=world.alfa.slug) + "/exportar.csv").status_code == 404
    assert not _audit_entries(config, world.alfa)


def test_export_masks_for_whoever_may_not_edit():
    from services.users import queries
    assert queries.may_edit_personal_data("staff") and queries.may_edit_personal_data("admin")
    assert not queries.may_edit_personal_data("client")


# --------------------------------------------------------------------------- 6. MFA setting


def test_security_setting_emits_the_policy_and_is_audited(browser_client, config, world):
    login(browser_client, config, world.ana)
    url = SECURITY.format(slug=world.alfa.slug)
    html = _page(browser_client, url)
    assert "Exigir verificação em duas etapas da equipe do escritório" in html and "checked" not in html
    response = browser_client.post(url, data={"csrf_token": csrf_token(html), "exigir_mfa": "1"})
    assert response.status_code == 303
    html = _page(browser_client, url)
    assert "checked" in html and "Configurações de segurança salvas." in html
    events_ = outbox_events(config, "firm.mfa_policy_changed")
    assert [e["payload"] for e in events_] == [{"firm_id": str(world.alfa.id), "require_staff_mfa": True}]
    browser_client.post(url, data={"csrf_token": csrf_token(html), "exigir_mfa": "1"})  # unchanged
    assert len(outbox_events(config, "firm.mfa_policy_changed")) == 1
    browser_client.post(url, data={"csrf_token": csrf_token(html)})  # unchecked
    assert outbox_events(config, "firm.mfa_policy_changed")[-1]["payload"]["require_staff_mfa"] is False
    entries = [e for e in _audit_entries(config, world.alfa) if e.action == "firm.mfa_policy_changed"]
    assert [e.details["require_staff_mfa"] for e in entries] == [True, False]
    assert "não exigida" in _page(browser_client, AUDIT.format(slug=world.alfa.slug))


def test_security_setting_is_404_for_staff_clients_and_other_firms(browser_client, config, world):
    paula = Person(uuid.uuid4(), "paula@alfa.com.br", "Paula Reis")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=paula.identity_id,
                                  name=paula.name, email=paula.email, role="staff")
    url = SECURITY.format(slug=world.alfa.slug)
    for person in (paula, world.carlos, world.bruno):
        login(browser_client, config, person)
        token = csrf_token(_page(browser_client, MY_FIRMS))  # a CSRF token is good for one login only
        assert browser_client.get(url).status_code == 404, person.name
        assert browser_client.post(url, data={"csrf_token": token, "exigir_mfa": "1"}).status_code == 404
    assert not outbox_events(config, "firm.mfa_policy_changed")


# --------------------------------------------------------------------------- 5. Minha conta › Meus escritórios


def test_my_firms_shows_each_firm_with_my_data(browser_client, config, world):
    cpf = make_cpf(31337)
    with users_db(config).begin() as s:
        cu = s.get(models.ClientUser, world.carlos_at_alfa.id)
        services.update_client_user(s, firm=s.get(models.Firm, world.alfa.id), client_user=cu, name=cu.name,
                                    email=cu.email, cpf=cpf, phone="+5511912345678",
                                    company_ids=[world.alfa_company.id])
    login(browser_client, config, world.carlos)
    assert "Meus escritórios" in _page(browser_client, f"/e/{world.alfa.slug}/")
    html = _page(browser_client, MY_FIRMS)
    text = text_of(html)
    assert "Contabilidade Alfa" in text and "Contabilidade Beta" in text
    assert f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}" in text and "(11) 91234-5678" in text
    assert "Definir como padrão" in text and "Sair deste escritório" in text


def test_my_firms_statements_do_not_grow_with_firms(browser_client, config, world):
    login(browser_client, config, world.carlos)
    _page(browser_client, MY_FIRMS)
    with count_queries(config, "users") as few:
        _page(browser_client, MY_FIRMS)
    from services.users.tests.conftest import link_client, make_cnpj
    for i in range(3):
        with users_db(config).begin() as s:
            firm = services.create_firm(s, name=f"Escritório Extra {i}", cnpj=make_cnpj(500 + i),
                                        admin_identity_id=uuid.uuid4(), admin_name="Admin Extra",
                                        admin_email=f"admin{i}@extra.example")
            cu = services.register_client_user(s, firm=firm, name="Carlos Souza", email="carlos@example.com",
                                               access="now")
            firm_id, cu_id = firm.id, cu.id
        link_client(config, firm_id=firm_id, client_user_id=cu_id, identity_id=world.carlos.identity_id)
    with count_queries(config, "users") as many:
        html = _page(browser_client, MY_FIRMS)
    assert "Escritório Extra 2" in html and few.count == many.count


def test_default_firm_is_used_by_the_root(browser_client, config, world):
    login(browser_client, config, world.carlos)
    browser_client.get(f"/trocar-escritorio?escritorio={world.alfa.slug}")  # the cookie says Alfa
    assert browser_client.get("/").headers["Location"].endswith(f"/e/{world.alfa.slug}/")
    token = csrf_token(_page(browser_client, MY_FIRMS))
    response = browser_client.post(f"{MY_FIRMS}/{world.beta.slug}/padrao", data={"csrf_token": token})
    assert response.status_code == 303
    assert browser_client.get("/").headers["Location"].endswith(f"/e/{world.beta.slug}/")
    html = _page(browser_client, MY_FIRMS)
    assert html.count("Definir como padrão") == 1 and "Padrão" in html


def test_leaving_a_firm(browser_client, config, world):
    login(browser_client, config, world.carlos)
    leave = f"{MY_FIRMS}/{world.alfa.slug}/sair"
    html = _page(browser_client, leave)
    assert "Sair de Contabilidade Alfa?" in text_of(html)
    response = browser_client.post(leave, data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    cu = get_client_user(config, world.carlos_at_alfa.id)
    assert (cu.status, cu.inactive_reason) == ("inactive", "left")
    revoked = outbox_events(config, "membership.revoked")
    assert [e["payload"] for e in revoked] == [{"firm_id": str(world.alfa.id),
                                                "identity_id": str(world.carlos.identity_id), "reason": "left",
                                                "role": "client"}]
    assert browser_client.get(f"/e/{world.alfa.slug}/").status_code == 404
    html = _page(browser_client, MY_FIRMS)
    assert "Contabilidade Alfa" not in html and "Contabilidade Beta" in html
    entry = _audit_entries(config, world.alfa)[-1]
    assert entry.action == "client_user.left" and entry.actor_id == world.carlos.identity_id
    login(browser_client, config, world.ana)
    assert "Saiu do portal" in _page(browser_client, LIST.format(slug=world.alfa.slug))
    assert "Saiu do portal" in _page(browser_client, LIST.format(slug=world.alfa.slug) + f"/{cu.id}")
    assert "Usuário saiu do portal" in _page(browser_client, AUDIT.format(slug=world.alfa.slug))


def test_the_last_admin_cannot_leave(browser_client, config, world):
    login(browser_client, config, world.ana)
    leave = f"{MY_FIRMS}/{world.alfa.slug}/sair"
    html = _page(browser_client, leave)
    response = browser_client.post(leave, data={"csrf_token": csrf_token(html)})
    assert response.status_code == 409 and "único administrador" in response.get_data(as_text=True)
    assert not outbox_events(config, "membership.revoked")
    assert browser_client.get(f"/e/{world.alfa.slug}/").status_code == 200
    # with a second admin, staff may leave
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=uuid.uuid4(),
                                  name="Outra Admin", email="outra@alfa.com.br", role="admin")
    response = browser_client.post(leave, data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303 and browser_client.get(f"/e/{world.alfa.slug}/").status_code == 404
    assert outbox_events(config, "membership.revoked")[-1]["payload"]["reason"] == "left"


def test_my_firms_routes_are_404_for_a_firm_i_am_not_in(browser_client, config, world):
    login(browser_client, config, world.bruno)
    token = csrf_token(_page(browser_client, MY_FIRMS))
    assert "Contabilidade Alfa" not in _page(browser_client, MY_FIRMS)
    for suffix in ("/padrao", "/sair"):
        url = f"{MY_FIRMS}/{world.alfa.slug}{suffix}"
        assert browser_client.post(url, data={"csrf_token": token}).status_code == 404
    assert browser_client.get(f"{MY_FIRMS}/{world.alfa.slug}/sair").status_code == 404
    assert browser_client.get(f"{MY_FIRMS}/nao-existe/sair").status_code == 404
    assert get_client_user(config, world.carlos_at_alfa.id).status == "active"
    browser_client.delete_cookie("balcao_session")
    assert browser_client.get(MY_FIRMS).status_code == 303


# --------------------------------------------------------------------------- migration and catalogue


def test_the_migration_encrypts_existing_cpf_and_phone(tmp_path, config):
    from pathlib import Path

    from alembic import command
    from alembic.config import Config as AlembicConfig

    from services.common.db import Database
    database = Database(f"sqlite:///{tmp_path / 'users.sqlite3'}", service="users")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(models.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = database
    command.upgrade(cfg, "de6a43d5c0d8")
    firm_id, cu_id = uuid.uuid4(), uuid.uuid4()
    cpf = make_cpf(24680)
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO firms (id, name, slug, cnpj, created_at) VALUES (:id, 'F', 'f', '1', :now)"),
                     {"id": firm_id.hex, "now": datetime.now(UTC)})
        conn.execute(text("INSERT INTO client_users (id, firm_id, name, email, cpf, phone, status, created_at, "
                          "updated_at) VALUES (:id, :f, 'Ana B', 'a@b.example', :cpf, '+5511987654321', "
                          "'not_invited', :now, :now)"),
                     {"id": cu_id.hex, "f": firm_id.hex, "cpf": cpf, "now": datetime.now(UTC)})
    command.upgrade(cfg, "head")
    with database.engine.begin() as conn:
        raw = conn.execute(text("SELECT cpf, phone, cpf_hash FROM client_users")).one()
    assert raw.cpf.startswith("v1:") and raw.phone.startswith("v1:") and raw.cpf_hash == pii.cpf_hash(cpf)
    with database.begin() as s:
        cu = s.get(models.ClientUser, cu_id)
        assert (cu.cpf, cu.phone) == (cpf, "+5511987654321")
    database.dispose()


def test_new_pages_in_english(browser_client, config, world):
    from services.users.tests.test_pages import _compile_english_catalogue
    _compile_english_catalogue()
    login(browser_client, config, world.ana)
    browser_client.set_cookie("balcao_locale", "en")
    html = _page(browser_client, SECURITY.format(slug=world.alfa.slug))
    assert "Require two-step verification for the firm's staff" in html
    html = _page(browser_client, AUDIT.format(slug=world.alfa.slug))
    assert "Audit log" in html and "Who did it" in html
    html = _page(browser_client, MY_FIRMS)
    assert "My firms" in html and "Set as default" in html and "Leave this firm" in html
    assert "Export CSV" in _page(browser_client, LIST.format(slug=world.alfa.slug))

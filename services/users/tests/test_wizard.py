"""Novo Usuário's five steps (ONVIO's Geral → Departamentos → Empresas → Permissões →
Notificações → Concluir), Editar's sections, what the user's page shows, and the
`client_user.access_changed` events and audit entries they lead to."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from services.common.events import CATALOGUE, parse_envelope
from services.users import models, queries, services
from services.users.tests.conftest import (
    form_fields,
    link_client,
    login,
    main_html,
    make_cpf,
    outbox_events,
    text_of,
    users_db,
)
from testsupport import csrf_token

DEPARTMENTS = ["Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"]
ANA = services.Actor(None, "Ana Lima", "ana@alfa.com.br")


def _new(firm) -> str:
    return f"/e/{firm.slug}/configuracoes/usuarios-de-clientes/novo"


def _user(firm, client_user_id, rest="") -> str:
    return f"/e/{firm.slug}/configuracoes/usuarios-de-clientes/{client_user_id}{rest}"


def _departments(config, firm) -> dict[str, models.Department]:
    with users_db(config).begin() as s:
        return {d.name: d for d in queries.departments_of(s, firm=firm)}


def _count(config, model) -> int:
    with users_db(config).begin() as s:
        return s.scalar(select(func.count()).select_from(model))


def _geral(client, firm, **typed):
    """Geral filled in and Avançar: the Departamentos page."""
    html = client.get(_new(firm)).get_data(as_text=True)
    data = {"csrf_token": csrf_token(html), "step": "geral", "name": "Diana Prado", "cpf": "", "phone": "",
            "email": "diana@example.com", "access": "now", **typed}
    response = client.post(_new(firm), data=data)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def _forward(client, firm, html, change=None, *, status=200):
    """Avançar (or Concluir) with what the page's form holds, after `change(fields)`."""
    fields = form_fields(html, "/novo")
    if change:
        change(fields)
    response = client.post(_new(firm), data=fields)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def _back(client, firm, html):
    fields = form_fields(html, "/novo")
    fields["voltar"] = "1"
    response = client.post(_new(firm), data=fields)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _access_events(config, client_user_id=None) -> list[dict]:
    return [e for e in outbox_events(config, "client_user.access_changed")
            if client_user_id is None or e["payload"]["client_user_id"] == str(client_user_id)]


def _stored(config, client_user_id) -> tuple[dict, set, dict]:
    """({department name: level}, permissions, {kind: channel}) as stored."""
    with users_db(config).begin() as s:
        cu = s.scalar(select(models.ClientUser).options(*queries.ACCESS_OPTIONS)
                      .where(models.ClientUser.id == client_user_id))
        return ({row.department.name: row.level for row in cu.department_access}, cu.permissions,
                cu.notification_choices)


def _set_levels(**levels):
    """A form change: tick exactly these departments (by id) at these levels."""
    def change(fields):
        fields.setlist("department_ids", list(levels))
        for department_id, level in levels.items():
            fields[f"level_{department_id}"] = level
    return change


# --------------------------------------------------------------------------- the five steps


def test_the_five_steps_in_order_with_their_defaults(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = browser_client.get(_new(world.alfa)).get_data(as_text=True)
    text = text_of(main_html(html))
    assert "Passo 1 de 5: Geral" in text
    assert [label for label in ("Geral", "Departamentos", "Empresas", "Permissões", "Notificações")
            if label in text] == ["Geral", "Departamentos", "Empresas", "Permissões", "Notificações"]
    assert 'aria-current="step">Geral<' in html

    html = _geral(browser_client, world.alfa)
    text = text_of(main_html(html))
    assert "Passo 2 de 5: Departamentos" in text and 'aria-current="step">Departamentos<' in html
    for words in ("Revisor: vê as pastas do departamento, sem alterar nada.",
                  "Contribuinte: também adiciona documentos e pastas, e exclui apenas o que adicionou.",
                  "Proprietário: controle total das pastas do departamento."):
        assert words in text
    departments = _departments(config, world.alfa)
    fields = form_fields(html, "/novo")
    # default: every department ticked, each at Revisor
    assert fields.getlist("department_ids") == [str(d.id) for d in departments.values()]
    assert all(fields[f"level_{d.id}"] == "reviewer" for d in departments.values())
    assert "Nível de acesso em Fiscal" in html  # each select has its label (read by screen readers)

    html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    assert "Passo 3 de 5: Empresas" in text_of(main_html(html))
    html = _forward(browser_client, world.alfa, html, lambda f: f.add("company_ids", str(world.alfa_company.id))
                    ).get_data(as_text=True)
    text = text_of(main_html(html))
    assert "Passo 4 de 5: Permissões" in text
    assert "Enviar documentos ao escritório" in text and "Baixar documentos" in text
    assert "“Enviar documentos ao escritório” marcada quando algum departamento tem o nível Contribuinte" in text
    assert form_fields(html, "/novo").getlist("permissions") == ["download"]  # every department is Revisor

    html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    text = text_of(main_html(html))
    assert "Passo 5 de 5: Notificações" in text and ">Concluir<" in html and ">Avançar<" not in html
    for kind in ("Novos documentos", "Guias a vencer", "Avisos do escritório"):
        assert kind in text
    for channel in ("Nenhuma", "E-mail", "Portal", "E-mail e portal"):
        assert f"> {channel}</label>" in html
    fields = form_fields(html, "/novo")
    assert [fields[f"notify_{k}"] for k in ("new_documents", "due_guias", "firm_notices")] == ["email_and_portal"] * 3
    assert _count(config, models.ClientUser) == 2  # nothing created before Concluir
    assert {e["payload"]["client_user_id"] for e in _access_events(config)} == {
        str(world.carlos_at_alfa.id), str(world.carlos_at_beta.id)}

    response = _forward(browser_client, world.alfa, html, status=303)
    cu_id = uuid.UUID(response.headers["Location"].rsplit("/", 1)[1])
    assert _stored(config, cu_id) == ({name: "reviewer" for name in DEPARTMENTS}, {"download"},
                                      {k: "email_and_portal" for k in ("new_documents", "due_guias", "firm_notices")})
    page = text_of(main_html(browser_client.get(response.headers["Location"]).get_data(as_text=True)))
    assert "Usuário registrado." in page
    assert "Contábil — Revisor Fiscal — Revisor Pessoal — Revisor Societário — Revisor Financeiro — Revisor" in page
    assert "Permissões Baixar documentos Notificações" in page
    assert ("Novos documentos: E-mail e portal Guias a vencer: E-mail e portal "
            "Avisos do escritório: E-mail e portal") in page
    [event] = outbox_events(config, "client_user.access_activated")[-1:]
    assert event["payload"]["email"] == "diana@example.com"  # the invitation goes out at Concluir, as before


def test_levels_permissions_and_notifications_chosen_on_the_way(browser_client, config, world):
    login(browser_client, config, world.ana)
    d = _departments(config, world.alfa)
    html = _geral(browser_client, world.alfa, cpf=make_cpf(77), phone="(11) 98765-4321")
    html = _forward(browser_client, world.alfa, html, _set_levels(**{
        str(d["Fiscal"].id): "contributor", str(d["Pessoal"].id): "owner",
        str(d["Contábil"].id): "reviewer"})).get_data(as_text=True)
    html = _forward(browser_client, world.alfa, html).get_data(as_text=True)  # Empresas: none
    # a Contribuinte/Proprietário department: "Enviar documentos" is suggested too
    assert form_fields(html, "/novo").getlist("permissions") == ["upload", "download"]

    def only_upload(fields):  # follows a guia's status without downloading it… but sends documents
        fields.setlist("permissions", ["upload"])
    html = _forward(browser_client, world.alfa, html, only_upload).get_data(as_text=True)

    def notifications(fields):
        fields["notify_new_documents"] = "email"
        fields["notify_due_guias"] = "portal"
        fields["notify_firm_notices"] = "none"
    response = _forward(browser_client, world.alfa, html, notifications, status=303)
    cu_id = uuid.UUID(response.headers["Location"].rsplit("/", 1)[1])
    assert _stored(config, cu_id) == ({"Contábil": "reviewer", "Fiscal": "contributor", "Pessoal": "owner"},
                                      {"upload"},
                                      {"new_documents": "email", "due_guias": "portal", "firm_notices": "none"})
    page = text_of(main_html(browser_client.get(response.headers["Location"]).get_data(as_text=True)))
    assert "Contábil — Revisor Fiscal — Contribuinte Pessoal — Proprietário Empresas" in page
    assert "Permissões Enviar documentos ao escritório Notificações" in page
    assert "Novos documentos: E-mail Guias a vencer: Portal Avisos do escritório: Nenhuma" in page

    [event] = _access_events(config, cu_id)
    envelope, payload = parse_envelope(event)  # what a consumer loads
    assert envelope["type"] == "client_user.access_changed"
    assert payload["reason"] == "created" and payload["revision"] == 1 and payload["identity_id"] is None
    assert {(str(a["department_id"]), a["level"]) for a in payload["departments"]} == {
        (str(d["Contábil"].id), "reviewer"), (str(d["Fiscal"].id), "contributor"), (str(d["Pessoal"].id), "owner")}
    assert payload["permissions"] == {"upload": True, "download": False}
    assert payload["notifications"] == {"new_documents": "email", "due_guias": "portal", "firm_notices": "none"}
    assert payload["company_ids"] == []
    # the name and e-mail travel in their own fields (minor 1); the CPF and phone never
    assert (payload["name"], payload["email"]) == ("Diana Prado", "diana@example.com")
    raw = str({k: v for k, v in event["payload"].items() if k not in ("name", "email")})
    for personal in ("diana", "Diana", make_cpf(77), "98765", "99876"):
        assert personal not in raw


def test_voltar_on_every_step_keeps_what_was_chosen(browser_client, config, world):
    login(browser_client, config, world.ana)
    d = _departments(config, world.alfa)
    html = _geral(browser_client, world.alfa, name="Elisa Moura", email="elisa@example.com", access="later")
    html = _forward(browser_client, world.alfa, html, _set_levels(**{str(d["Fiscal"].id): "owner"})).get_data(
        as_text=True)
    html = _forward(browser_client, world.alfa, html, lambda f: f.add("company_ids", str(world.alfa_company2.id))
                    ).get_data(as_text=True)
    step5 = _forward(browser_client, world.alfa, html, lambda f: f.setlist("permissions", [])).get_data(as_text=True)
    assert "Passo 5 de 5" in text_of(step5)
    step5 = step5.replace('name="notify_due_guias" value="email">', 'name="notify_due_guias" value="email" checked>')
    step5 = step5.replace('name="notify_due_guias" value="email_and_portal" checked>',
                          'name="notify_due_guias" value="email_and_portal">')  # as a click on "E-mail" would

    back = _back(browser_client, world.alfa, step5)  # → Permissões: nothing ticked, as left
    assert "Passo 4 de 5: Permissões" in text_of(back) and form_fields(back, "/novo").getlist("permissions") == []
    back = _back(browser_client, world.alfa, back)  # → Empresas
    assert "Passo 3 de 5: Empresas" in text_of(back)
    assert form_fields(back, "/novo").getlist("company_ids") == [str(world.alfa_company2.id)]
    back = _back(browser_client, world.alfa, back)  # → Departamentos
    fields = form_fields(back, "/novo")
    assert "Passo 2 de 5" in text_of(back) and fields.getlist("department_ids") == [str(d["Fiscal"].id)]
    assert fields[f"level_{d['Fiscal'].id}"] == "owner"
    back = _back(browser_client, world.alfa, back)  # → Geral
    assert "Passo 1 de 5: Geral" in text_of(back) and 'value="Elisa Moura"' in back
    assert 'id="f-access" name="access" value="later"' in back
    assert form_fields(back, "/novo")["notify_due_guias"] == "email"  # later steps ride along, hidden
    assert _count(config, models.ClientUser) == 2

    html = back
    for _ in range(4):  # Avançar through, changing nothing
        html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    response = _forward(browser_client, world.alfa, html, status=303)
    cu_id = uuid.UUID(response.headers["Location"].rsplit("/", 1)[1])
    assert _stored(config, cu_id) == ({"Fiscal": "owner"}, set(),
                                      {"new_documents": "email_and_portal", "due_guias": "email",
                                       "firm_notices": "email_and_portal"})
    with users_db(config).begin() as s:
        assert [c.id for c in s.get(models.ClientUser, cu_id).companies] == [world.alfa_company2.id]
    assert "Nenhuma: vê os documentos e guias, sem enviar nem baixar." in text_of(
        browser_client.get(response.headers["Location"]).get_data(as_text=True))


def _refused(config, before_users, before_events):
    assert _count(config, models.ClientUser) == before_users
    assert len(outbox_events(config)) == before_events


@pytest.mark.parametrize("change, step, message", [
    (lambda f, d, w: f.setlist("department_ids", []), "Passo 2 de 5: Departamentos",
     "Escolha ao menos um departamento."),
    (lambda f, d, w: f.__setitem__(f"level_{d['Fiscal'].id}", "chefe"), "Passo 2 de 5: Departamentos",
     "Nível de acesso inválido."),
    (lambda f, d, w: f.add("department_ids", str(w["beta_fiscal"].id)), "Passo 2 de 5: Departamentos",
     "Departamento inválido."),
    (lambda f, d, w: f.add("department_ids", "nao-e-departamento"), "Passo 2 de 5: Departamentos",
     "Departamento inválido."),
    (lambda f, d, w: f.add("company_ids", str(w["beta_company"])), "Passo 3 de 5: Empresas", "Empresa inválida."),
    (lambda f, d, w: (f.__setitem__("permissions_set", "1"), f.add("permissions", "excluir_tudo")),
     "Passo 4 de 5: Permissões", "Permissão inválida."),
    (lambda f, d, w: f.__setitem__("notify_due_guias", "pombo-correio"), "Passo 5 de 5: Notificações",
     "Escolha inválida."),
], ids=["no-department", "bad-level", "other-firms-department", "not-an-id", "other-firms-company",
        "bad-permission", "bad-channel"])
def test_a_bad_choice_is_shown_on_its_step_and_nothing_is_created(browser_client, config, world, change, step,
                                                                 message):
    login(browser_client, config, world.ana)
    d = _departments(config, world.alfa)
    extra = {"beta_fiscal": _departments(config, world.beta)["Fiscal"], "beta_company": world.beta_company.id}
    html = _geral(browser_client, world.alfa)
    for _ in range(3):
        html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    assert "Passo 5 de 5" in text_of(html)
    before = (_count(config, models.ClientUser), len(outbox_events(config)))
    response = _forward(browser_client, world.alfa, html, lambda f: change(f, d, extra), status=422)
    page = text_of(main_html(response.get_data(as_text=True)))
    assert step in page and message in page
    assert 'value="diana@example.com"' in response.get_data(as_text=True)  # the rest still carried
    _refused(config, *before)


def test_an_email_taken_meanwhile_sends_concluir_back_to_geral(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = _geral(browser_client, world.alfa)
    for _ in range(3):
        html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    with users_db(config).begin() as s:  # another staff member registers the same e-mail first
        services.register_client_user(s, firm=world.alfa, name="Diana Outra", email="diana@example.com")
    before = (_count(config, models.ClientUser), len(outbox_events(config)))
    response = _forward(browser_client, world.alfa, html, status=422)
    page = text_of(main_html(response.get_data(as_text=True)))
    assert "Passo 1 de 5: Geral" in page and "Já existe um usuário com este e-mail neste escritório." in page
    _refused(config, *before)


def test_without_javascript_every_step_is_a_plain_form(browser_client, config, world):
    """No step needs a script: the Ativar choice has its <noscript> radios, the other steps are
    checkboxes, selects and radios posted with hidden fields."""
    login(browser_client, config, world.ana)
    html = browser_client.get(_new(world.alfa)).get_data(as_text=True)
    assert '<input type="radio" name="access" value="now"' in html
    html = _geral(browser_client, world.alfa, access=["", "now"])  # the hidden input empty, the radio chosen
    for _ in range(4):
        assert "<script" not in main_html(html)
        html = _forward(browser_client, world.alfa, html).get_data(as_text=True) if "Concluir" not in html else html
    response = _forward(browser_client, world.alfa, html, status=303)
    assert response.status_code == 303
    assert outbox_events(config, "client_user.access_activated")[-1]["payload"]["send_now"] is True


# --------------------------------------------------------------------------- Editar


def _edit(client, firm, cu_id, change=None, *, status=303):
    url = _user(firm, cu_id, "/editar")
    html = client.get(url).get_data(as_text=True)
    fields = form_fields(html, "/editar")
    if change:
        change(fields)
    response = client.post(url, data=fields)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def test_editar_has_a_section_per_step_prefilled(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = browser_client.get(_user(world.alfa, world.carlos_at_alfa.id, "/editar")).get_data(as_text=True)
    for legend in ("Geral", "Departamentos", "Empresas", "Permissões", "Notificações"):
        assert f"<legend>{legend}</legend>" in html, legend
    fields = form_fields(html, "/editar")
    d = _departments(config, world.alfa)
    assert fields.getlist("department_ids") == [str(x.id) for x in d.values()]
    assert fields.getlist("permissions") == ["download"] and fields["notify_firm_notices"] == "email_and_portal"
    assert fields["email"] == "carlos@example.com" and fields.getlist("company_ids") == [str(world.alfa_company.id)]


def test_editar_saves_each_part_with_one_event_and_an_audit_entry_per_part(browser_client, config, world):
    login(browser_client, config, world.ana)
    d = _departments(config, world.alfa)
    cu = world.carlos_at_alfa
    before = len(_access_events(config, cu.id))

    def change(fields):
        fields.setlist("department_ids", [str(d["Fiscal"].id), str(d["Contábil"].id)])
        fields[f"level_{d['Fiscal'].id}"] = "contributor"
        fields.setlist("permissions", ["upload", "download"])
        fields["notify_new_documents"] = "portal"
    response = _edit(browser_client, world.alfa, cu.id, change)
    page = text_of(main_html(browser_client.get(response.headers["Location"]).get_data(as_text=True)))
    assert "Alterações salvas." in page and "Contábil — Revisor Fiscal — Contribuinte Empresas" in page
    assert _stored(config, cu.id) == ({"Contábil": "reviewer", "Fiscal": "contributor"}, {"upload", "download"},
                                      {"new_documents": "portal", "due_guias": "email_and_portal",
                                       "firm_notices": "email_and_portal"})
    events = _access_events(config, cu.id)
    assert len(events) == before + 1  # one save, one event
    _, payload = parse_envelope(events[-1])
    assert payload["reason"] == "edited" and payload["identity_id"] == world.carlos.identity_id
    assert payload["revision"] == events[-2]["payload"]["revision"] + 1
    assert payload["permissions"] == {"upload": True, "download": True}
    assert payload["company_ids"] == [world.alfa_company.id]

    with users_db(config).begin() as s:
        entries = {e.action: e for e in s.scalars(select(models.AuditEntry).where(
            models.AuditEntry.target_id == cu.id, models.AuditEntry.action.like("client_user.%_changed")))}
    assert set(entries) == {"client_user.departments_changed", "client_user.permissions_changed",
                            "client_user.notifications_changed"}
    departments = entries["client_user.departments_changed"]
    assert departments.actor_email == world.ana.email and departments.target_name == "Carlos Souza"
    assert departments.details == {"before": {name: "reviewer" for name in DEPARTMENTS},
                                   "after": {"Contábil": "reviewer", "Fiscal": "contributor"}}
    assert entries["client_user.permissions_changed"].details == {"before": ["download"],
                                                                 "after": ["download", "upload"]}
    assert entries["client_user.notifications_changed"].details["after"]["new_documents"] == "portal"
    for entry in entries.values():
        assert "carlos@example.com" not in str(entry.details)

    # the audit page names them and filters by them
    html = browser_client.get(f"/e/{world.alfa.slug}/configuracoes/auditoria",
                              query_string={"acao": "client_user.departments_changed"}).get_data(as_text=True)
    assert "Departamentos do usuário alterados" in html and "Permissões do usuário alteradas" not in text_of(
        html.split("<tbody>", 1)[1])


def test_editar_without_access_changes_records_no_access_event(browser_client, config, world):
    login(browser_client, config, world.ana)
    cu = world.carlos_at_alfa
    before = len(_access_events(config, cu.id))
    _edit(browser_client, world.alfa, cu.id)  # Salvar, nothing changed
    assert len(_access_events(config, cu.id)) == before
    _edit(browser_client, world.alfa, cu.id, lambda f: f.__setitem__("phone", "+5511912345678"))
    assert len(_access_events(config, cu.id)) == before  # the phone does not travel
    _edit(browser_client, world.alfa, cu.id, lambda f: f.__setitem__("name", "Carlos Souza Filho"))
    events = _access_events(config, cu.id)  # the name does (minor 1: "Visualizado por ...")
    assert len(events) == before + 1 and events[-1]["payload"]["name"] == "Carlos Souza Filho"
    before += 1
    _edit(browser_client, world.alfa, cu.id, lambda f: f.add("company_ids", str(world.alfa_company2.id)))
    events = _access_events(config, cu.id)
    assert len(events) == before + 1 and len(events[-1]["payload"]["company_ids"]) == 2


def test_editar_refuses_no_department_and_changes_nothing(browser_client, config, world):
    login(browser_client, config, world.ana)
    cu = world.carlos_at_alfa
    before = (_stored(config, cu.id), len(outbox_events(config)))
    response = _edit(browser_client, world.alfa, cu.id, lambda f: (f.setlist("department_ids", []),
                                                                   f.__setitem__("name", "Carlos Outro")),
                     status=422)
    html = response.get_data(as_text=True)
    assert "Escolha ao menos um departamento." in text_of(html) and 'value="Carlos Outro"' in html
    assert (_stored(config, cu.id), len(outbox_events(config))) == before


def test_editar_of_another_firms_user_is_404(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = browser_client.get(_user(world.alfa, world.carlos_at_alfa.id, "/editar")).get_data(as_text=True)
    url = _user(world.alfa, world.carlos_at_beta.id, "/editar")
    assert browser_client.get(url).status_code == 404
    assert browser_client.post(url, data={**form_fields(html, "/editar"), "notify_due_guias": "none"}
                               ).status_code == 404
    assert _stored(config, world.carlos_at_beta.id)[2]["due_guias"] == "email_and_portal"


# --------------------------------------------------------------------------- the event, as a contract


def test_each_change_records_exactly_one_access_event_that_its_schema_loads(config, world):
    d = _departments(config, world.alfa)
    with users_db(config).begin() as s:
        before = len(_access_events(config))
        cu = services.register_client_user(s, firm=world.alfa, name="Gil Souza", email="gil@example.com",
                                           departments={d["Fiscal"].id: "owner"})
        cu_id = cu.id
    created = _access_events(config)[before:]
    assert [e["payload"]["reason"] for e in created] == ["created"]

    link_client(config, firm_id=world.alfa.id, client_user_id=cu_id, identity_id=uuid.uuid4())
    with users_db(config).begin() as s:
        cu = queries.client_user_of(s, firm=world.alfa, client_user_id=cu_id)
        services.update_client_user(s, firm=world.alfa, client_user=cu, name=cu.name, email=cu.email,
                                    departments={d["Fiscal"].id: "reviewer"}, actor=ANA)
    with users_db(config).begin() as s:
        services.remove_department(s, firm=world.alfa, department=s.get(models.Department, d["Fiscal"].id),
                                   move_to=s.get(models.Department, d["Contábil"].id), actor=ANA)
    events = _access_events(config, cu_id)
    assert [e["payload"]["reason"] for e in events] == ["created", "linked", "edited", "department_removed"]
    assert [e["payload"]["revision"] for e in events] == [1, 2, 3, 4]
    assert events[0]["payload"]["identity_id"] is None and events[1]["payload"]["identity_id"] is not None
    assert [a["department_id"] for a in events[-1]["payload"]["departments"]] == [str(d["Contábil"].id)]
    schema = CATALOGUE["client_user.access_changed"]
    assert schema.consumers == ("documents",) and schema.producers == ("users",)
    for event in events:
        _, payload = parse_envelope(event)
        assert set(payload) == {"firm_id", "client_user_id", "identity_id", "revision", "reason", "departments",
                                "company_ids", "permissions", "notifications", "status", "name", "email"}
        assert payload["name"] == "Gil Souza" and payload["email"] == "gil@example.com"


def test_the_producer_refuses_an_unknown_field_the_consumer_ignores_it(config, world):
    from marshmallow import ValidationError

    from services.common.events import make_envelope, validate_payload
    [event] = _access_events(config, world.carlos_at_alfa.id)[:1]
    payload = event["payload"]
    for bad in ({**payload, "cpf": "52998224725"}, {**payload, "permissions": {**payload["permissions"], "x": 1}},
                {**payload, "departments": [{**payload["departments"][0], "name": "Fiscal"}]}):
        with pytest.raises(ValidationError):
            validate_payload("client_user.access_changed", bad)
    envelope = make_envelope("client_user.access_changed", payload, correlation_id="c")
    envelope["payload"]["notifications"]["whatsapp_alerts"] = "email"  # a kind added by a newer producer
    _, loaded = parse_envelope(envelope)
    assert "whatsapp_alerts" not in loaded["notifications"]


# --------------------------------------------------------------------------- existing users


def test_existing_client_users_get_every_department_at_revisor_and_the_defaults(tmp_path):
    """The migration that brings access: nothing changes for users registered before it."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    from services.common.db import Database
    database = Database(f"sqlite:///{tmp_path / 'users.sqlite3'}", service="users")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(models.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = database
    command.upgrade(cfg, "9104980fe8be")  # departments, before client users' access
    firm_id, other_firm, user_id, deleted_id = (uuid.uuid4() for _ in range(4))
    with database.engine.begin() as conn:
        for fid, slug, cnpj in ((firm_id, "alfa", "11222333000181"), (other_firm, "beta", "11444777000161")):
            conn.execute(text("INSERT INTO firms (id, name, slug, cnpj, created_at, require_staff_mfa) "
                              "VALUES (:id, :slug, :slug, :cnpj, CURRENT_TIMESTAMP, 0)"),
                         {"id": fid.hex, "slug": slug, "cnpj": cnpj})
        for position, name in enumerate(("Contábil", "Fiscal", "Antigo")):
            conn.execute(text("INSERT INTO departments (id, firm_id, name, name_key, position, created_at, removed_at) "
                              "VALUES (:id, :firm, :name, :key, :pos, CURRENT_TIMESTAMP, :removed)"),
                         {"id": uuid.uuid4().hex, "firm": firm_id.hex, "name": name, "key": name.casefold(),
                          "pos": position + 10, "removed": "2026-01-01 00:00:00" if name == "Antigo" else None})
        for cid, status in ((user_id, "active"), (deleted_id, "deleted")):
            conn.execute(text("INSERT INTO client_users (id, firm_id, name, email, status, created_at, updated_at) "
                              "VALUES (:id, :firm, 'Pessoa Antiga', :email, :status, CURRENT_TIMESTAMP, "
                              "CURRENT_TIMESTAMP)"), {"id": cid.hex, "firm": firm_id.hex, "status": status,
                                                      "email": f"{status}@example.com"})
    command.upgrade(cfg, "7de8c26be368")
    with database.engine.connect() as conn:
        def rows(sql):
            return sorted(tuple(r) for r in conn.execute(text(sql), {"id": user_id.hex}).all())
        access = rows("SELECT d.name, a.level, a.firm_id = d.firm_id FROM client_user_departments a "
                      "JOIN departments d ON d.id = a.department_id WHERE a.client_user_id = :id")
        permissions = rows("SELECT permission FROM client_user_permissions WHERE client_user_id = :id")
        notifications = rows("SELECT kind, channel FROM client_user_notifications WHERE client_user_id = :id")
        total = conn.execute(text("SELECT count(*) FROM client_user_departments")).scalar_one()
        revision = conn.execute(text("SELECT access_revision FROM client_users WHERE id = :id"),
                                {"id": user_id.hex}).scalar_one()
    database.dispose()
    # the firm's live departments, not the removed one
    assert [name for name, _level, _same in access] == ["Contábil", "Fiscal"]
    assert {(level, same) for _name, level, same in access} == {("reviewer", 1)}
    assert permissions == [("download",)]
    assert notifications == [("due_guias", "email_and_portal"), ("firm_notices", "email_and_portal"),
                             ("new_documents", "email_and_portal")]
    assert total == 2 * 2 and revision == 0  # the deleted user too (a reactivation finds them in place)


def test_the_steps_speak_english_when_chosen(browser_client, config, world):
    login(browser_client, config, world.ana)
    browser_client.get("/idioma/en?next=/")
    html = _geral(browser_client, world.alfa)
    text = text_of(main_html(html))
    assert "Step 2 of 5: Departments" in text and "Reviewer:" in text and "Access level in" in text
    for _ in range(2):
        html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    text = text_of(main_html(html))
    assert "Step 4 of 5: Permissions" in text and "Send documents to the firm" in text
    html = _forward(browser_client, world.alfa, html).get_data(as_text=True)
    text = text_of(main_html(html))
    assert "New documents" in text and "E-mail and portal" in text and "Revisor" not in text
    detail = _forward(browser_client, world.alfa, html, status=303).headers["Location"]
    text = text_of(main_html(browser_client.get(detail).get_data(as_text=True)))
    assert "Contábil — Reviewer" in text and "Download documents" in text and "Notices from the firm" in text


def test_the_demo_carlos_has_departments_levels_and_choices_that_make_sense(config):
    from services.provision import seed_demo
    assert seed_demo(config)
    with users_db(config).begin() as s:
        carlos = s.scalar(select(models.ClientUser).options(*queries.ACCESS_OPTIONS)
                          .where(models.ClientUser.email == "carlos@cliente.example"))
        access = {row.department.name: row.level for row in carlos.department_access}
        assert access == {"Contábil": "reviewer", "Fiscal": "contributor", "Pessoal": "contributor",
                          "Societário": "reviewer", "Financeiro": "reviewer"}
        assert carlos.permissions == {"upload", "download"}  # the defaults for a Contribuinte
        assert carlos.notification_choices == {"new_documents": "email_and_portal", "due_guias": "email_and_portal",
                                               "firm_notices": "portal"}

"""Configurações › Equipe: the team list, Convidar colaborador, Editar (role, departments,
carteira), Desativar / Reativar / Excluir / Reenviar convite; the firm's last active Administrador;
staff_member.changed and the invitation events for staff; audit entries; 404 for another firm's
staff, for Colaboradores and clients."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from services.common.events import CATALOGUE
from services.users import models, queries, services
from testsupport import count_queries, csrf_token

from .conftest import Person, login, main_html, outbox_events, text_of, users_db


def _url(firm, rest: str = "") -> str:
    return f"/e/{firm.slug}/configuracoes/equipe{rest}"


def _post(client, url, data, page_url=None):
    page = client.get(page_url or url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_token(page), **data})


def _departments(config, firm) -> dict[str, models.Department]:
    with users_db(config).begin() as s:
        return {d.name: d for d in queries.departments_of(s, firm=firm)}


def _member(config, member_id) -> models.StaffMember:
    with users_db(config).begin() as s:
        member = s.scalar(select(models.StaffMember).where(models.StaffMember.id == member_id))
        _ = member.departments, member.companies
        return member


def _member_by_email(config, firm, email) -> models.StaffMember:
    with users_db(config).begin() as s:
        member = s.scalar(select(models.StaffMember).where(models.StaffMember.firm_id == firm.id,
                                                           models.StaffMember.email == email,
                                                           models.StaffMember.status != "deleted"))
        _ = member.departments, member.companies
        return member


def _audit(config, firm, action) -> list[models.AuditEntry]:
    with users_db(config).begin() as s:
        return list(s.scalars(select(models.AuditEntry).where(models.AuditEntry.firm_id == firm.id,
                                                              models.AuditEntry.action == action)
                              .order_by(models.AuditEntry.at)))


def _staff_events(config, member_id) -> list[dict]:
    return [e["payload"] for e in outbox_events(config, "staff_member.changed")
            if e["payload"]["staff_member_id"] == str(member_id)]


def _valid(event_type: str, payload: dict) -> dict:
    """What the catalogue's schema (every consumer's) reads of a payload."""
    return CATALOGUE[event_type].schema().load(payload)


def _invite(client, config, firm, *, name="Paula Reis", email="paula@alfa.com.br", role="staff",
            departments=(), companies=()):
    deps = _departments(config, firm)
    return _post(client, _url(firm, "/convidar"), {
        "name": name, "email": email, "role": role, "department_ids": [str(deps[d].id) for d in departments],
        "company_ids": [str(c.id) for c in companies]})


def _colaborador(config, firm, company_ids=(), *, email="paula@alfa.com.br", name="Paula Reis") -> Person:
    """An active Colaborador of `firm` with this carteira (as if her invitation was accepted)."""
    paula = Person(uuid.uuid4(), email, name)
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, firm.id), identity_id=paula.identity_id,
                                  name=paula.name, email=paula.email, role="staff", company_ids=company_ids)
    return paula


def _ana_member(config, world) -> models.StaffMember:
    return _member_by_email(config, world.alfa, world.ana.email)


# --------------------------------------------------------------------------- the list


def test_the_firm_admin_of_create_firm_is_an_administrador(browser_client, config, world):
    ana = _ana_member(config, world)
    assert (ana.role, ana.status, ana.identity_id) == ("admin", "active", world.ana.identity_id)
    [changed] = _staff_events(config, ana.id)
    assert _valid("staff_member.changed", changed)["role"] == "admin"
    assert changed == {"firm_id": str(world.alfa.id), "staff_member_id": str(ana.id),
                       "identity_id": str(world.ana.identity_id), "role": "admin", "status": "active",
                       "department_ids": [], "company_ids": [], "name": world.ana.name, "email": world.ana.email}
    login(browser_client, config, world.ana)
    html = main_html(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    administradores, colaboradores = html.split("<h2>Colaboradores</h2>")
    assert "Ana Lima" in administradores and "Todas as empresas" in administradores
    assert "Ativo" in administradores and "Ninguém com este papel." in colaboradores


def test_the_list_shows_both_roles_with_departments_carteira_and_status(browser_client, config, world):
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        deps = {d.name: d.id for d in queries.departments_of(s, firm=alfa)}
        services.invite_staff_member(s, firm=alfa, name="Paula Reis", email="paula@alfa.com.br", role="staff",
                                     department_ids=[deps["Fiscal"], deps["Pessoal"]],
                                     company_ids=[world.alfa_company.id, world.alfa_company2.id])
        services.add_staff_member(s, firm=alfa, identity_id=uuid.uuid4(), name="Rui Costa", email="rui@alfa.com.br",
                                  role="staff", company_ids=[world.alfa_company.id])
    login(browser_client, config, world.ana)
    text = text_of(main_html(browser_client.get(_url(world.alfa)).get_data(as_text=True)))
    assert "Paula Reis paula@alfa.com.br Fiscal, Pessoal 2 empresas Aguardando envio" in text
    assert "Rui Costa rui@alfa.com.br — 1 empresa Ativo" in text
    heading = text.index("Colaboradores Nome E-mail")
    assert text.index("Ana Lima") < heading < text.index("Paula Reis") < text.index("Rui Costa")


def test_the_list_sends_the_same_statements_however_large_the_team(browser_client, config, world):
    login(browser_client, config, world.ana)
    browser_client.get(_url(world.alfa))
    with count_queries(config, "users") as few:
        browser_client.get(_url(world.alfa))
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        deps = [d.id for d in queries.departments_of(s, firm=alfa)]
        for i in range(12):
            services.invite_staff_member(s, firm=alfa, name=f"Pessoa Número{i}", email=f"p{i}@alfa.com.br",
                                         role="staff" if i % 2 else "admin", department_ids=deps[:i % 4],
                                         company_ids=[world.alfa_company.id])
    with count_queries(config, "users") as many:
        html = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    assert "Pessoa Número11" in html and few.count == many.count


# --------------------------------------------------------------------------- Convidar colaborador


def test_admin_invites_a_colaborador_through_the_invitation_chain(browser_client, config, world):
    login(browser_client, config, world.ana)
    response = _invite(browser_client, config, world.alfa, name="  Paula   Reis ", email=" Paula@Alfa.com.br ",
                       departments=("Fiscal",), companies=(world.alfa_company,))
    assert response.status_code == 303
    member = _member_by_email(config, world.alfa, "paula@alfa.com.br")
    assert response.headers["Location"].endswith(_url(world.alfa, f"/{member.id}"))
    assert (member.name, member.role, member.status, member.identity_id) == ("Paula Reis", "staff", "invited", None)
    assert [d.name for d in member.departments] == ["Fiscal"] and member.companies[0].id == world.alfa_company.id
    # the same event the client users' invitations start from, naming a staff member
    [activated] = [e["payload"] for e in outbox_events(config, "client_user.access_activated")
                   if e["payload"]["email"] == "paula@alfa.com.br"]
    assert activated == {"firm_id": str(world.alfa.id), "firm_name": "Contabilidade Alfa", "firm_slug": world.alfa.slug,
                         "client_user_id": str(member.id), "email": "paula@alfa.com.br", "name": "Paula Reis",
                         "send_now": True, "subject": "staff_member"}
    assert _valid("client_user.access_activated", activated)["subject"] == "staff_member"
    [changed] = _staff_events(config, member.id)
    assert changed["status"] == "invited" and changed["identity_id"] is None and changed["role"] == "staff"
    assert changed["company_ids"] == [str(world.alfa_company.id)]
    # the name and e-mail in their own fields (minor 1: the documents service shows and notifies)
    assert (changed["name"], changed["email"]) == ("Paula Reis", "paula@alfa.com.br")
    [entry] = _audit(config, world.alfa, "staff.invited")
    assert entry.target_name == "Paula Reis" and entry.actor_email == world.ana.email
    assert entry.details == {"role": "staff", "departments": ["Fiscal"], "companies": 1}
    page = text_of(main_html(browser_client.get(response.headers["Location"]).get_data(as_text=True)))
    assert "Convite enviado para paula@alfa.com.br." in page and "Aguardando envio" in page
    assert "Colaborador" in page and "Padaria Pão Quente Ltda" in page


@pytest.mark.parametrize("changes, field_message", [
    ({"name": "Paula"}, "Informe nome e sobrenome."),
    ({"email": "paula@"}, "E-mail inválido."),
    ({"role": "dono"}, "Escolha o papel: Administrador ou Colaborador."),
    ({"role": ""}, "Escolha o papel: Administrador ou Colaborador."),
    ({"email": "ana@alfa.com.br"}, "Já existe um membro da equipe com este e-mail."),
    ({"name": "Paula\x1bReis"}, "caracteres de controle"),
    ({"company_ids": "beta"}, "Empresa inválida."),
    ({"department_ids": "beta"}, "Departamento inválido."),
    ({"company_ids": "não-é-um-id"}, "Empresa inválida."),
])
def test_bad_invitations_are_refused_and_nothing_is_created(browser_client, config, world, changes, field_message):
    beta_fiscal = _departments(config, world.beta)["Fiscal"]
    if changes.get("company_ids") == "beta":
        changes = {"company_ids": str(world.beta_company.id)}
    if changes.get("department_ids") == "beta":
        changes = {"department_ids": str(beta_fiscal.id)}
    login(browser_client, config, world.ana)
    before = len(outbox_events(config))
    data = {"name": "Paula Reis", "email": "paula@alfa.com.br", "role": "staff", **changes}
    response = _post(browser_client, _url(world.alfa, "/convidar"), data)
    assert response.status_code == 422 and field_message in text_of(response.get_data(as_text=True))
    assert len(outbox_events(config)) == before and not _audit(config, world.alfa, "staff.invited")
    with users_db(config).begin() as s:
        assert s.scalar(select(models.StaffMember).where(models.StaffMember.email == "paula@alfa.com.br")) is None


def test_an_inactive_members_email_is_reactivated_not_invited_again(browser_client, config, world):
    login(browser_client, config, world.ana)
    _invite(browser_client, config, world.alfa)
    member = _member_by_email(config, world.alfa, "paula@alfa.com.br")
    with users_db(config).begin() as s:
        services.deactivate_staff_member(s, firm=s.get(models.Firm, world.alfa.id),
                                         member=s.get(models.StaffMember, member.id), actor=None)
    response = _invite(browser_client, config, world.alfa)
    assert response.status_code == 422 and "use Reativar" in text_of(response.get_data(as_text=True))


def test_resend_gives_a_new_invitation_with_the_client_users_cooldown(browser_client, config, world):
    login(browser_client, config, world.ana)
    _invite(browser_client, config, world.alfa)
    member = _member_by_email(config, world.alfa, "paula@alfa.com.br")
    detail = _url(world.alfa, f"/{member.id}")
    too_soon = _post(browser_client, detail + "/reenviar-convite", {}, page_url=detail)
    assert too_soon.status_code == 303
    assert "Você poderá reenviá-lo em" in text_of(browser_client.get(detail).get_data(as_text=True))
    assert not outbox_events(config, "client_user.invitation_requested")
    with users_db(config).begin() as s:
        services.resend_staff_invitation(s, firm=s.get(models.Firm, world.alfa.id),
                                         member=s.get(models.StaffMember, member.id), cooldown_seconds=0,
                                         actor=services.Actor(world.ana.identity_id, world.ana.name, world.ana.email))
    [requested] = [e["payload"] for e in outbox_events(config, "client_user.invitation_requested")]
    assert requested["subject"] == "staff_member" and requested["client_user_id"] == str(member.id)
    assert _audit(config, world.alfa, "staff.invitation_resent")


# --------------------------------------------------------------------------- Editar


def test_admin_edits_role_departments_and_carteira(browser_client, config, world):
    login(browser_client, config, world.ana)
    _invite(browser_client, config, world.alfa, departments=("Fiscal",), companies=(world.alfa_company,))
    member = _member_by_email(config, world.alfa, "paula@alfa.com.br")
    deps = _departments(config, world.alfa)
    edit = _url(world.alfa, f"/{member.id}/editar")
    form = browser_client.get(edit).get_data(as_text=True)
    assert re.search(r'id="role-staff" name="role" value="staff" checked', form)
    assert re.search(rf'value="{deps["Fiscal"].id}" checked', form)
    response = _post(browser_client, edit, {"role": "admin", "department_ids": [str(deps["Contábil"].id)],
                                            "company_ids": [str(world.alfa_company2.id)]})
    assert response.status_code == 303
    after = _member(config, member.id)
    assert after.role == "admin" and [d.name for d in after.departments] == ["Contábil"]
    assert [c.id for c in after.companies] == [world.alfa_company2.id]
    [role] = _audit(config, world.alfa, "staff.role_changed")
    assert role.details == {"from": "staff", "to": "admin"} and role.target_name == "Paula Reis"
    [departments] = _audit(config, world.alfa, "staff.departments_changed")
    assert departments.details == {"from": ["Fiscal"], "to": ["Contábil"]}
    [carteira] = _audit(config, world.alfa, "staff.carteira_changed")
    assert carteira.details == {"companies": 1, "added": ["Mercado Central Ltda"], "removed": ["Padaria Pão Quente Ltda"]}
    invited, edited = _staff_events(config, member.id)  # one event for the edit
    assert _valid("staff_member.changed", edited) and edited["role"] == "admin"
    assert edited["department_ids"] == [str(deps["Contábil"].id)] and edited["company_ids"] == [str(world.alfa_company2.id)]
    audit_page = text_of(browser_client.get(f"/e/{world.alfa.slug}/configuracoes/auditoria?acao=staff.role_changed")
                         .get_data(as_text=True))
    assert "Papel na equipe alterado: Colaborador → Administrador" in audit_page
    # saving the same again changes nothing and announces nothing
    _post(browser_client, edit, {"role": "admin", "department_ids": [str(deps["Contábil"].id)],
                                 "company_ids": [str(world.alfa_company2.id)]})
    assert len(_staff_events(config, member.id)) == 2
    assert "Nada foi alterado." in text_of(browser_client.get(_url(world.alfa, f"/{member.id}")).get_data(as_text=True))


def test_the_last_active_admin_cannot_demote_themself(browser_client, config, world):
    """The acceptance's case: Ana, Alfa's only Administrador, makes herself a Colaborador."""
    login(browser_client, config, world.ana)
    ana = _ana_member(config, world)
    edit = _url(world.alfa, f"/{ana.id}/editar")
    response = _post(browser_client, edit, {"role": "staff"})
    assert response.status_code == 422
    assert ("Você é o único Administrador ativo do escritório: torne outra pessoa Administrador antes de mudar o "
            "seu próprio papel.") in text_of(response.get_data(as_text=True))
    assert _member(config, ana.id).role == "admin" and not _audit(config, world.alfa, "staff.role_changed")
    assert len(_staff_events(config, ana.id)) == 1
    assert browser_client.get(_url(world.alfa)).status_code == 200  # still an admin
    # an invited admin does not count: only an active one keeps the firm running
    _invite(browser_client, config, world.alfa, name="Rui Costa", email="rui@alfa.com.br", role="admin")
    assert _post(browser_client, edit, {"role": "staff"}).status_code == 422
    # with a second active Administrador she may, and Equipe is then no longer hers
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=uuid.uuid4(),
                                  name="Outra Admin", email="outra@alfa.com.br", role="admin")
    response = _post(browser_client, edit, {"role": "staff"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/e/{world.alfa.slug}/")
    assert _member(config, ana.id).role == "staff"
    assert browser_client.get(_url(world.alfa)).status_code == 404


def test_the_last_active_admin_can_be_neither_deactivated_nor_removed(browser_client, config, world):
    login(browser_client, config, world.ana)
    ana = _ana_member(config, world)
    detail = _url(world.alfa, f"/{ana.id}")
    for action, word in (("desativar", "desativar"), ("excluir", "excluir")):
        response = _post(browser_client, f"{detail}/{action}", {}, page_url=detail)
        assert response.status_code == 303
        assert (f"O escritório precisa de pelo menos um Administrador ativo: torne outra pessoa Administrador antes de "
                f"{word} Ana Lima.") in text_of(browser_client.get(detail).get_data(as_text=True))
    assert _member(config, ana.id).status == "active"
    assert not outbox_events(config, "membership.revoked") and browser_client.get(_url(world.alfa)).status_code == 200
    with users_db(config).begin() as s:  # the same rule for any caller of the service
        alfa, row = s.get(models.Firm, world.alfa.id), s.get(models.StaffMember, ana.id)
        with pytest.raises(services.ClientUserError):
            services.update_staff_member(s, firm=alfa, member=row, role="staff", actor=None)


# --------------------------------------------------------------------------- Desativar, Reativar, Excluir


def test_a_deactivated_colaborador_is_refused_on_the_very_next_request(browser_client, config, world):
    paula = _colaborador(config, world.alfa, [world.alfa_company.id])
    member = _member_by_email(config, world.alfa, paula.email)
    login(browser_client, config, paula)
    clients = f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes"
    assert browser_client.get(clients).status_code == 200
    login(browser_client, config, world.ana)
    detail = _url(world.alfa, f"/{member.id}")
    assert _post(browser_client, detail + "/desativar", {}, page_url=detail).status_code == 303
    [revoked] = [e["payload"] for e in outbox_events(config, "membership.revoked")]
    assert revoked == {"firm_id": str(world.alfa.id), "identity_id": str(paula.identity_id), "reason": "deactivated",
                       "role": "staff"}
    assert _staff_events(config, member.id)[-1]["status"] == "inactive"
    assert _audit(config, world.alfa, "staff.deactivated")[0].target_name == "Paula Reis"
    assert "Inativo" in text_of(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    login(browser_client, config, paula)  # the same token she had
    assert browser_client.get(clients).status_code == 404
    assert browser_client.get(f"/e/{world.alfa.slug}/").status_code == 404
    # Reativar sends a new invitation: she links her login again
    login(browser_client, config, world.ana)
    assert _post(browser_client, detail + "/reativar", {}, page_url=detail).status_code == 303
    after = _member(config, member.id)
    assert (after.status, after.identity_id) == ("invited", None)
    activated = [e["payload"] for e in outbox_events(config, "client_user.access_activated")]
    assert activated[-1]["client_user_id"] == str(member.id) and activated[-1]["subject"] == "staff_member"
    assert _audit(config, world.alfa, "staff.reactivated")
    login(browser_client, config, paula)
    assert browser_client.get(clients).status_code == 404


def test_an_invited_member_deactivated_voids_the_invitation(browser_client, config, world):
    login(browser_client, config, world.ana)
    _invite(browser_client, config, world.alfa)
    member = _member_by_email(config, world.alfa, "paula@alfa.com.br")
    detail = _url(world.alfa, f"/{member.id}")
    _post(browser_client, detail + "/desativar", {}, page_url=detail)
    [revoked] = [e["payload"] for e in outbox_events(config, "client_user.access_revoked")]
    assert revoked == {"firm_id": str(world.alfa.id), "client_user_id": str(member.id), "reason": "deactivated",
                       "subject": "staff_member"}
    assert not outbox_events(config, "membership.revoked")  # there was no membership yet


def test_a_removed_member_leaves_the_team_and_the_email_may_be_invited_again(browser_client, config, world):
    paula = _colaborador(config, world.alfa, [world.alfa_company.id])
    member = _member_by_email(config, world.alfa, paula.email)
    login(browser_client, config, world.ana)
    detail = _url(world.alfa, f"/{member.id}")
    response = _post(browser_client, detail + "/excluir", {}, page_url=detail)
    assert response.status_code == 303 and response.headers["Location"].endswith(_url(world.alfa))
    assert "Membro da equipe excluído." in text_of(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    assert "Paula Reis" not in main_html(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    assert browser_client.get(detail).status_code == 404
    row = _member(config, member.id)
    assert (row.status, row.identity_id) == ("deleted", None)
    assert outbox_events(config, "membership.revoked")[-1]["payload"]["reason"] == "deleted"
    assert _staff_events(config, member.id)[-1]["status"] == "deleted"
    assert _audit(config, world.alfa, "staff.deleted")
    login(browser_client, config, paula)
    assert browser_client.get(f"/e/{world.alfa.slug}/").status_code == 404
    login(browser_client, config, world.ana)
    assert _invite(browser_client, config, world.alfa, email=paula.email).status_code == 303


def test_an_admin_who_removes_themself_is_sent_away(browser_client, config, world):
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=uuid.uuid4(),
                                  name="Outra Admin", email="outra@alfa.com.br", role="admin")
    login(browser_client, config, world.ana)
    ana = _ana_member(config, world)
    detail = _url(world.alfa, f"/{ana.id}")
    response = _post(browser_client, detail + "/desativar", {}, page_url=detail)
    assert response.status_code == 303 and response.headers["Location"].endswith("/")
    assert browser_client.get(_url(world.alfa)).status_code == 404


# --------------------------------------------------------------------------- who may


def test_another_firms_staff_colaboradores_and_clients_get_404(browser_client, config, world):
    bruno = _member_by_email(config, world.beta, world.bruno.email)
    login(browser_client, config, world.ana)
    page = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    token = csrf_token(page)
    for method, path in (("GET", _url(world.alfa, f"/{bruno.id}")), ("GET", _url(world.alfa, f"/{bruno.id}/editar")),
                         ("POST", _url(world.alfa, f"/{bruno.id}/editar")),
                         ("POST", _url(world.alfa, f"/{bruno.id}/desativar")),
                         ("POST", _url(world.alfa, f"/{bruno.id}/reativar")),
                         ("POST", _url(world.alfa, f"/{bruno.id}/excluir")),
                         ("POST", _url(world.alfa, f"/{bruno.id}/reenviar-convite")),
                         ("GET", _url(world.alfa, f"/{uuid.uuid4()}")), ("GET", _url(world.alfa, "/não-é-id")),
                         ("GET", _url(world.beta)), ("GET", _url(world.beta, "/convidar")),
                         ("POST", _url(world.beta, "/convidar"))):
        response = browser_client.open(path, method=method, data={"csrf_token": token, "role": "staff",
                                                                   "name": "X Y", "email": "x@y.com"})
        assert response.status_code == 404, path
    assert _member(config, bruno.id).status == "active" and _member(config, bruno.id).role == "admin"
    paula = _colaborador(config, world.alfa, [world.alfa_company.id])
    for person in (paula, world.carlos):
        login(browser_client, config, person)
        for path in (_url(world.alfa), _url(world.alfa, "/convidar"), _url(world.alfa, f"/{_ana_member(config, world).id}")):
            assert browser_client.get(path).status_code == 404, (person.name, path)


def test_the_pages_speak_english_when_chosen(browser_client, config, world):
    login(browser_client, config, world.ana)
    browser_client.get("/idioma/en?next=/")
    text = text_of(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    assert "Team" in text and "Invite team member" in text and "Administrators" in text and "All companies" in text
    assert "Convidar" not in text
    text = text_of(browser_client.get(_url(world.alfa, "/convidar")).get_data(as_text=True))
    assert "Role" in text and "Portfolio" in text and "Send invitation" in text and "Papel" not in text
    ana = _ana_member(config, world)
    text = text_of(_post(browser_client, _url(world.alfa, f"/{ana.id}/editar"), {"role": "staff"}).get_data(as_text=True))
    assert "only active Administrator: make someone else an Administrator before changing your own role" in text


# --------------------------------------------------------------------------- Migrar e excluir


def test_removing_a_department_moves_its_staff(config, world):
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        deps = {d.name: d for d in queries.departments_of(s, firm=alfa)}
        paula = services.invite_staff_member(s, firm=alfa, name="Paula Reis", email="paula@alfa.com.br", role="staff",
                                             department_ids=[deps["Pessoal"].id])
        rui = services.invite_staff_member(s, firm=alfa, name="Rui Costa", email="rui@alfa.com.br", role="staff",
                                           department_ids=[deps["Pessoal"].id, deps["Contábil"].id])
        ana = services.invite_staff_member(s, firm=alfa, name="Sem Pessoal", email="sp@alfa.com.br", role="staff",
                                           department_ids=[deps["Fiscal"].id])
        ids = paula.id, rui.id, ana.id
        services.remove_department(s, firm=alfa, department=deps["Pessoal"], move_to=deps["Contábil"],
                                   actor=services.Actor(None, "Ana Lima", "ana@alfa.com.br"))
    assert [d.name for d in _member(config, ids[0]).departments] == ["Contábil"]
    assert [d.name for d in _member(config, ids[1]).departments] == ["Contábil"]  # once, not twice
    assert [d.name for d in _member(config, ids[2]).departments] == ["Fiscal"]


def test_a_client_user_without_companies_is_still_invitable_by_an_admin(config, world):
    """An Administrador's registrations are not limited: no company is fine (only admins see them)."""
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=s.get(models.Firm, world.alfa.id), name="Sem Empresa",
                                           email="sem@example.com", access="now",
                                           scope=queries.Scope.everything(world.alfa))
        assert cu.companies == [] and cu.status == "invited"


# --------------------------------------------------------------------------- the migration


def test_staff_that_existed_before_equipe_keep_what_they_saw(tmp_path):
    """Migration e7f423b3489c: `active` becomes the status; every existing Colaborador gets a carteira
    of all the firm's companies (they saw every client the moment before)."""
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
    command.upgrade(cfg, "9104980fe8be")  # the revision before Equipe
    firm, other = uuid.uuid4(), uuid.uuid4()
    admin, staff, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    companies = [uuid.uuid4(), uuid.uuid4()]
    with database.engine.begin() as conn:
        for fid, slug, cnpj in ((firm, "antiga", "11222333000181"), (other, "outra", "11444777000161")):
            conn.execute(text("INSERT INTO firms (id, name, slug, cnpj, created_at, require_staff_mfa) "
                              "VALUES (:id, :slug, :slug, :cnpj, CURRENT_TIMESTAMP, 0)"),
                         {"id": fid.hex, "slug": slug, "cnpj": cnpj})
        for cid, fid, cnpj in ((companies[0], firm, "1"), (companies[1], firm, "2"), (uuid.uuid4(), other, "3")):
            conn.execute(text("INSERT INTO companies (id, firm_id, name, cnpj) VALUES (:id, :f, :n, :c)"),
                         {"id": cid.hex, "f": fid.hex, "n": f"Empresa {cnpj}", "c": cnpj})
        for sid, role, active in ((admin, "admin", 1), (staff, "staff", 1), (gone, "staff", 0)):
            conn.execute(text("INSERT INTO staff_members (id, firm_id, identity_id, name, email, role, active) "
                              "VALUES (:id, :f, :i, :n, :e, :r, :a)"),
                         {"id": sid.hex, "f": firm.hex, "i": uuid.uuid4().hex, "n": role, "e": f"{sid.hex}@x.com",
                          "r": role, "a": active})
    command.upgrade(cfg, "e7f423b3489c")
    with database.engine.connect() as conn:
        status = dict(conn.execute(text("SELECT id, status FROM staff_members")).all())
        carteira = conn.execute(text("SELECT staff_member_id, company_id FROM staff_member_companies")).all()
    database.dispose()
    assert status == {admin.hex: "active", staff.hex: "active", gone.hex: "inactive"}
    assert sorted(carteira) == sorted((sid.hex, cid.hex) for sid in (staff, gone) for cid in companies)


def test_my_firms_names_the_role(browser_client, config, world):
    """Minha conta › Meus escritórios says Administrador / Colaborador, as Equipe does."""
    paula = _colaborador(config, world.alfa, [world.alfa_company.id])
    login(browser_client, config, paula)
    assert "Perfil Colaborador" in text_of(main_html(browser_client.get("/minha-conta/escritorios").get_data(as_text=True)))
    login(browser_client, config, world.ana)
    assert "Perfil Administrador" in text_of(main_html(browser_client.get("/minha-conta/escritorios").get_data(as_text=True)))

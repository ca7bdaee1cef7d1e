"""The documents service learns who may see what only from the users service's events: firms,
companies, departments, client users (companies × departments with levels, permissions,
notification choices, status) and staff (role, carteira, departments)."""
from __future__ import annotations

from sqlalchemy import select

from services.common.runtime import database
from services.documents import models, queries
from services.users import services as users_services
from services.users.tests.conftest import users_db


def access_of(config, identity_id, firm_id):
    with database("documents", config).begin() as s:
        for firm, member in queries.memberships(s, identity_id=identity_id):
            if firm.id == firm_id:
                found = queries.access_for(s, firm, member)
                return found.role, set(found.company_ids), dict(found.department_levels)
    return None


def test_the_projection_follows_firms_companies_departments_and_people(config, docworld, bus):
    w = docworld
    with database("documents", config).begin() as s:
        firms = {f.id: f for f in s.scalars(select(models.Firm))}
        assert firms[w.beta.id].name == "Contabilidade Beta" and firms[w.beta.id].slug == w.beta.slug
        beta_departments = set(s.scalars(select(models.Department.id).where(models.Department.firm_id == w.beta.id)))
    assert len(beta_departments) >= 1
    role, companies, levels = access_of(config, w.carlos.identity_id, w.beta.id)
    assert role == "client" and companies == {w.beta_company.id}
    # the admin sees every company and every department of the firm, and nothing of the other
    role, companies, levels = access_of(config, w.bruno.identity_id, w.beta.id)
    assert role == "admin" and companies == {w.beta_company.id} and set(levels) == beta_departments
    assert access_of(config, w.bruno.identity_id, w.alfa.id) is None
    assert access_of(config, w.ana.identity_id, w.beta.id) is None


def test_deactivating_a_client_user_ends_access_and_reactivating_waits_for_the_new_link(config, docworld, bus):
    w = docworld
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        cu = s.get(type(w.carlos_at_beta), w.carlos_at_beta.id)
        users_services.deactivate_client_user(s, firm=firm, client_user=cu)
    bus.pump()
    assert access_of(config, w.carlos.identity_id, w.beta.id) is None
    assert access_of(config, w.carlos.identity_id, w.alfa.id) is not None  # the other firm is untouched


def test_a_company_deactivated_leaves_the_clients_folders(config, docworld, bus):
    w = docworld
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        company = s.get(type(w.beta_company), w.beta_company.id)
        users_services.deactivate_company(s, firm=firm, company=company)
    bus.pump()
    role, companies, _levels = access_of(config, w.carlos.identity_id, w.beta.id)
    assert companies == set()


def test_a_documents_service_added_later_learns_the_existing_firms(config, docworld, bus):
    """`balcao announce-state` (and `balcao run` on a var/ older than the documents service): the
    users service records its state as events again, and a documents service that knew nothing
    learns every firm, company, department and person; a second time changes nothing."""
    from sqlalchemy import delete

    from services.users.services import announce_state

    w = docworld
    before = access_of(config, w.carlos.identity_id, w.beta.id)
    with database("documents", config).begin() as s:  # a documents service installed now
        for table in (models.MemberCompany, models.MemberDepartment, models.Member, models.Company,
                      models.Department, models.Firm):
            s.execute(delete(table))
    assert access_of(config, w.carlos.identity_id, w.beta.id) is None
    with users_db(config).begin() as s:
        counts = announce_state(s)
    assert counts["firms"] == 2 and counts["client_users"] == 2 and counts["staff_members"] == 2
    bus.pump()
    assert access_of(config, w.carlos.identity_id, w.beta.id) == before
    with users_db(config).begin() as s:
        announce_state(s)
    bus.pump()
    assert access_of(config, w.carlos.identity_id, w.beta.id) == before


def _access_changed(member_id, firm_id, *, revision, companies, departments):
    return {"firm_id": firm_id, "client_user_id": member_id, "identity_id": None, "revision": revision,
            "reason": "edited", "departments": [{"department_id": d, "level": lv} for d, lv in departments.items()],
            "company_ids": companies, "permissions": {"upload": True, "download": True},
            "notifications": {"new_documents": "email", "due_guias": "email", "firm_notices": "portal"},
            "status": "not_invited", "name": "Projeção", "email": "projecao@example.com"}


def test_a_client_users_links_are_replaced_whole_and_a_new_one_costs_no_deletes(config):
    """client_user.access_changed replaces a client user's companies and departments whole (a company
    sent twice is one link); for a person the projection had never seen, nothing is deleted first:
    the member row and one INSERT per kind of link (issue 11: every imported client user comes
    through here)."""
    import uuid

    from services.documents import projection
    from testsupport import count_queries
    member_id, firm_id = uuid.uuid4(), uuid.uuid4()
    c1, c2, c3, d1, d2 = (uuid.uuid4() for _ in range(5))

    def links():
        with database("documents", config).begin() as s:
            companies = set(s.scalars(select(models.MemberCompany.company_id)
                                      .where(models.MemberCompany.member_id == member_id)))
            departments = dict(s.execute(select(models.MemberDepartment.department_id, models.MemberDepartment.level)
                                         .where(models.MemberDepartment.member_id == member_id)).all())
        return companies, departments

    with count_queries(config, "documents") as counted, database("documents", config).begin() as s:
        projection.apply_client_access(s, _access_changed(member_id, firm_id, revision=1, companies=[c1, c2, c1],
                                                          departments={d1: "reviewer"}))
    assert not any(q.lstrip().upper().startswith("DELETE") for q in counted.statements), counted.statements
    # the member (read with its lock, then inserted) and the two kinds of links
    assert len(counted.statements) == 4, counted.statements
    assert links() == ({c1, c2}, {d1: "reviewer"})

    with database("documents", config).begin() as s:
        projection.apply_client_access(s, _access_changed(member_id, firm_id, revision=2, companies=[c3],
                                                          departments={d1: "owner", d2: "contributor"}))
    assert links() == ({c3}, {d1: "owner", d2: "contributor"})
    with database("documents", config).begin() as s:  # an older revision arriving late changes nothing
        projection.apply_client_access(s, _access_changed(member_id, firm_id, revision=1, companies=[c1],
                                                          departments={}))
    assert links() == ({c3}, {d1: "owner", d2: "contributor"})
    with database("documents", config).begin() as s:
        projection.apply_client_access(s, _access_changed(member_id, firm_id, revision=3, companies=[],
                                                          departments={}))
    assert links() == (set(), {})

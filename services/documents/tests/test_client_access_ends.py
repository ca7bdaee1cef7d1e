"""Access ends on the very next request: a deactivated membership, a removed company or a removed
department (its documents move to the department that received its people) take the documents
away from the pages, from opening, downloading and from Baixar selecionados at once."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.documents.services import Metadata
from services.documents.views.client import today
from services.users import models as users_models
from services.users import services as users_services
from services.users.tests.conftest import users_db
from testsupport import csrf_token
from testsupport.guias import das_guia, make_cnpj

from .client_support import department_id, new_client, section, set_access
from .conftest import login, publish

BRUNO = users_services.Actor(None, "Bruno Reis", "bruno@beta.com.br")


def a_guia(config, w, department="Fiscal"):
    due = today() + timedelta(days=4)
    return publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name=department,
                   data=das_guia(make_cnpj(201), "10/2026", due.strftime("%d/%m/%Y"), "10,00"), name="DAS 10-2026.pdf",
                   by=w.bruno, meta=Metadata(competencia="10/2026", guia_tipo="DAS", vencimento=due))


class Visit:
    """Everything a client may do with one document, from one browser."""

    def __init__(self, client, config, w, doc_id, department="Fiscal"):
        self.client, self.w, self.doc_id = client, w, doc_id
        self.base = f"/documentos/e/{w.beta.slug}"
        self.folder = f"{self.base}/empresas/{w.beta_company.id}/{department_id(config, w.beta.id, department)}/"
        home = client.get(f"{self.base}/")
        assert home.status_code == 200
        self.csrf = csrf_token(home.text)

    def answers(self) -> dict[str, int]:
        c, base, doc = self.client, self.base, self.doc_id
        return {
            "open": c.get(f"{base}/documentos/{doc}/abrir").status_code,
            "download": c.get(f"{base}/documentos/{doc}/baixar").status_code,
            "zip": c.post(f"{base}/baixar-selecionados", data={"csrf_token": self.csrf, "ids": [str(doc)]}).status_code,
            "folder": c.get(self.folder).status_code,
        }

    def listed(self) -> dict[str, bool]:
        """Whether the document shows on the home (Pendências, recentes) and in the search."""
        home = self.client.get(f"{self.base}/")
        search = self.client.get(f"{self.base}/busca?q=das")
        return {"home": home.status_code == 200 and "DAS 10-2026.pdf" in home.text,
                "pending": home.status_code == 200 and "DAS 10-2026.pdf" in section(home.text, "pendencias"),
                "search": search.status_code == 200 and "DAS 10-2026.pdf" in search.text,
                "home_status": home.status_code, "search_status": search.status_code}


ALL_OK = {"open": 200, "download": 200, "zip": 200, "folder": 200}


def test_a_deactivated_membership_ends_everything_on_the_next_request(config, docworld, bus, browser_client):
    w = docworld
    doc = a_guia(config, w)
    login(browser_client, config, w.carlos)
    visit = Visit(browser_client, config, w, doc)
    assert visit.answers() == ALL_OK
    assert visit.listed() == {"home": True, "pending": False, "search": True, "home_status": 200,
                              "search_status": 200}  # (opened: no longer pending)
    with users_db(config).begin() as s:
        users_services.deactivate_client_user(s, firm=s.get(users_models.Firm, w.beta.id),
                                              client_user=s.get(users_models.ClientUser, w.carlos_at_beta.id))
    bus.pump()
    assert visit.answers() == {"open": 404, "download": 404, "zip": 404, "folder": 404}
    assert visit.listed() == {"home": False, "pending": False, "search": False, "home_status": 404,
                              "search_status": 404}
    # his other firm is untouched
    assert browser_client.get(f"/documentos/e/{w.alfa.slug}/").status_code == 200


def test_a_removed_company_ends_its_documents_on_the_next_request(config, docworld, bus, browser_client):
    w = docworld
    doc = a_guia(config, w)
    login(browser_client, config, w.carlos)
    visit = Visit(browser_client, config, w, doc)
    assert visit.listed()["pending"]
    with users_db(config).begin() as s:
        users_services.deactivate_company(s, firm=s.get(users_models.Firm, w.beta.id),
                                          company=s.get(users_models.Company, w.beta_company.id))
    bus.pump()
    assert visit.answers() == {"open": 404, "download": 404, "zip": 404, "folder": 404}
    assert visit.listed() == {"home": False, "pending": False, "search": False, "home_status": 200,
                              "search_status": 200}
    assert "Oficina Motor Forte" not in browser_client.get(f"/documentos/e/{w.beta.slug}/").text


def test_a_removed_department_s_documents_follow_its_people_to_the_receiving_department(config, docworld, bus,
                                                                                       browser_client):
    """Fiscal is removed into Contábil: Carlos (Fiscal only) is moved to Contábil by the users
    service and keeps the guia there; Eva (Contábil only) now sees it; Daniel (Pessoal only)
    still does not; Fiscal's address is gone for everybody."""
    w = docworld
    doc = a_guia(config, w)
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id, levels={"Fiscal": "reviewer"},
               permissions={"download"})
    eva, _ = new_client(config, bus, firm=w.beta, company_ids=[w.beta_company.id], name="Eva Contábil",
                        email="eva@example.com", levels={"Contábil": "reviewer"}, permissions={"download"})
    daniel, _ = new_client(config, bus, firm=w.beta, company_ids=[w.beta_company.id], name="Daniel Pessoal",
                           email="daniel@example.com", levels={"Pessoal": "owner"}, permissions={"download"})
    visits = {}
    for who, person in (("carlos", w.carlos), ("eva", eva), ("daniel", daniel)):
        client = Client(browser_client.application, Response, use_cookies=True)
        login(client, config, person)
        visits[who] = (Visit(client, config, w, doc), Visit(client, config, w, doc, department="Contábil"))
    assert visits["carlos"][0].answers() == ALL_OK
    assert visits["eva"][0].answers() == {"open": 404, "download": 404, "zip": 404, "folder": 404}
    assert visits["daniel"][0].answers() == {"open": 404, "download": 404, "zip": 404, "folder": 404}

    with users_db(config).begin() as s:
        firm = s.get(users_models.Firm, w.beta.id)
        named = {d.name: d for d in s.scalars(select(users_models.Department)
                                               .where(users_models.Department.firm_id == w.beta.id))}
        users_services.remove_department(s, firm=firm, department=named["Fiscal"], move_to=named["Contábil"],
                                         actor=BRUNO)
    bus.pump()

    for who in ("carlos", "eva"):
        fiscal, contabil = visits[who]
        assert contabil.answers() == ALL_OK, who
        assert fiscal.answers()["folder"] == 404, who   # the removed department's address
        assert contabil.listed()["search"], who
    fiscal, contabil = visits["daniel"]
    assert {**fiscal.answers(), "folder": contabil.answers()["folder"]} == {
        "open": 404, "download": 404, "zip": 404, "folder": 404}
    assert contabil.listed() == {"home": False, "pending": False, "search": False, "home_status": 200,
                                 "search_status": 200}

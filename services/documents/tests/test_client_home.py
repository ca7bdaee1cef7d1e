"""A client's Documentos home: Pendências (the guias they have not opened, by vencimento, the
overdue ones marked), Documentos recentes (the last ten), then their folders — only what their
companies × departments allow, read with a number of statements that does not grow with the
number of documents."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.documents.services import Metadata
from services.documents.views.client import today
from testsupport import count_queries
from testsupport.guias import das_guia, make_cnpj, text_pdf

from .client_support import new_company, rows, section
from .conftest import login, publish


def home_url(w):
    return f"/documentos/e/{w.beta.slug}/"


def guia(config, w, name, days, *, company_id=None, department="Fiscal", tipo="DAS", valor="10.00", by=None):
    due = today() + timedelta(days=days)
    return publish(config, firm_id=w.beta.id, company_id=company_id or w.beta_company.id, department_name=department,
                   data=das_guia(make_cnpj(201), "10/2026", due.strftime("%d/%m/%Y"), valor.replace(".", ",")),
                   name=name, by=by or w.bruno,
                   meta=Metadata(competencia="10/2026", guia_tipo=tipo, vencimento=due, valor=Decimal(valor)))


def plain(config, w, name, *, company_id=None, department="Contábil"):
    return publish(config, firm_id=w.beta.id, company_id=company_id or w.beta_company.id, department_name=department,
                   data=text_pdf(f"Documento {name}"), name=name, by=w.bruno)


def test_pendencias_lists_unopened_guias_by_vencimento_and_marks_the_overdue(config, docworld, bus, browser_client):
    w = docworld
    other_company = new_company(config, bus, firm=w.beta, name="Outra Empresa Ltda", cnpj=make_cnpj(299))
    guia(config, w, "DAS daqui a dez dias.pdf", 10)
    guia(config, w, "DARF vencida.pdf", -5, tipo="DARF", valor="1234.56")
    guia(config, w, "GPS daqui a dois dias.pdf", 2, tipo="GPS", department="Pessoal")
    guia(config, w, "FGTS vence hoje.pdf", 0, tipo="FGTS", department="Pessoal")
    opened = guia(config, w, "DAS já aberta.pdf", 1)
    plain(config, w, "Balancete.pdf")                                      # not a guia
    guia(config, w, "DAS de outra empresa.pdf", 3, company_id=other_company)  # not Carlos's company
    publish(config, firm_id=w.alfa.id, company_id=w.alfa_company.id, department_name="Fiscal",  # another firm
            data=das_guia(make_cnpj(101), "10/2026", "20/11/2026", "1,00"), name="DAS da Alfa.pdf", by=w.ana,
            meta=Metadata(guia_tipo="DAS", vencimento=today()))
    login(browser_client, config, w.carlos)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{opened}/abrir").status_code == 200

    page = browser_client.get(home_url(w))
    assert page.status_code == 200
    pending = rows(section(page.text, "pendencias"))
    assert [r.split(" Oficina")[0] for r in pending] == [
        "DARF vencida.pdf", "FGTS vence hoje.pdf", "GPS daqui a dois dias.pdf", "DAS daqui a dez dias.pdf"]
    overdue = (today() - timedelta(days=5)).strftime("%d/%m/%Y")
    assert f"Vencida venceu em {overdue}" in pending[0] and "R$ 1.234,56" in pending[0]
    assert f"vence em {today():%d/%m/%Y}" in pending[1] and "Vencida" not in pending[1]
    assert all("Vencida" not in r and "venceu" not in r for r in pending[1:])
    assert 'class="overdue"' in section(page.text, "pendencias")
    assert "DAS já aberta.pdf" not in section(page.text, "pendencias")
    for absent in ("DAS de outra empresa.pdf", "DAS da Alfa.pdf", "Outra Empresa"):
        assert absent not in page.text

    # opening the overdue one (its link) takes it off Pendências
    link = section(page.text, "pendencias").split('href="')[1].split('"')[0]
    assert link.endswith("/abrir") and browser_client.get(link).status_code == 200
    pending = rows(section(browser_client.get(home_url(w)).text, "pendencias"))
    assert [r.split(" Oficina")[0] for r in pending] == [
        "FGTS vence hoje.pdf", "GPS daqui a dois dias.pdf", "DAS daqui a dez dias.pdf"]

def test_recent_documents_are_the_last_ten_published_with_links_to_open_or_download(config, docworld, bus,
                                                                                   browser_client):
    w = docworld
    other_company = new_company(config, bus, firm=w.beta, name="Outra Empresa Ltda", cnpj=make_cnpj(299))
    ids = [plain(config, w, f"Relatório {n:02d}.pdf", department=("Contábil", "Fiscal", "Pessoal")[n % 3])
           for n in range(12)]
    spreadsheet = publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Pessoal",
                          data=b"Nome;Salario\nAna;1000\n", name="Folha.csv", by=w.bruno)
    plain(config, w, "Da outra empresa.pdf", company_id=other_company)
    login(browser_client, config, w.carlos)
    page = browser_client.get(home_url(w)).text
    recent = section(page, "recentes")
    names = [r.split(" Oficina")[0] for r in rows(recent)]
    assert names == ["Folha.csv"] + [f"Relatório {n:02d}.pdf" for n in range(11, 2, -1)]
    assert f"/documentos/{spreadsheet}/baixar" in recent         # a CSV is downloaded
    assert f"/documentos/{ids[11]}/abrir" in recent              # a PDF opens in the browser
    assert "Da outra empresa.pdf" not in page
    assert "Nenhuma guia pendente" in section(page, "pendencias")
    # then the folders of his company × each department
    folders = section(page, "pastas")
    assert "Oficina Motor Forte Ltda" in folders and "Outra Empresa" not in folders
    assert all(name in folders for name in ("Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"))
    # staff keep their own home
    login(browser_client, config, w.bruno)
    staff_home = browser_client.get(home_url(w)).text
    assert "Pendências" not in staff_home and "Outra Empresa Ltda" in staff_home


def test_the_home_sends_the_same_number_of_statements_whatever_the_number_of_documents(config, docworld, bus,
                                                                                       browser_client):
    w = docworld
    guia(config, w, "DAS 1.pdf", 3)
    plain(config, w, "Balancete 1.pdf")
    login(browser_client, config, w.carlos)
    assert browser_client.get(home_url(w)).status_code == 200  # (the first request warms what it caches)
    with count_queries(config, "documents") as few:
        small = browser_client.get(home_url(w))
    for n in range(12):
        guia(config, w, f"DAS mais {n}.pdf", n - 4, department=("Fiscal", "Pessoal")[n % 2])
        plain(config, w, f"Balancete mais {n}.pdf", department=("Contábil", "Societário", "Financeiro")[n % 3])
    with count_queries(config, "documents") as many:
        large = browser_client.get(home_url(w))
    assert small.status_code == large.status_code == 200
    assert len(rows(section(large.text, "pendencias"))) == 13 and len(rows(section(large.text, "recentes"))) == 10
    assert len(rows(section(small.text, "recentes"))) == 2
    assert many.count == few.count, (few.statements, many.statements)


def test_a_client_with_very_many_places_gets_the_same_lists(config, docworld, bus, monkeypatch):
    """Past queries.MAX_PLACES companies × departments the lists are read firm-wide instead of per
    place: the same documents in the same order."""
    from services.common.runtime import database
    from services.documents import queries

    w = docworld
    for n in range(8):
        guia(config, w, f"DAS {n}.pdf", n - 3, department=("Fiscal", "Pessoal")[n % 2])
        plain(config, w, f"Balancete {n}.pdf", department=("Contábil", "Societário")[n % 2])

    def lists():
        with database("documents", config).begin() as s:
            firm, member = next((f, m) for f, m in queries.memberships(s, identity_id=w.carlos.identity_id)
                                if f.id == w.beta.id)
            who = queries.access_for(s, firm, member)
            return ([d.name for d in queries.pending_guias(s, who, limit=5)],
                    [d.name for d in queries.recent_documents(s, who, limit=6)])

    per_place = lists()
    monkeypatch.setattr(queries, "MAX_PLACES", 1)
    assert lists() == per_place
    assert per_place[0] == ["DAS 0.pdf", "DAS 1.pdf", "DAS 2.pdf", "DAS 3.pdf", "DAS 4.pdf"]
    assert per_place[1] == ["Balancete 7.pdf", "DAS 7.pdf", "Balancete 6.pdf", "DAS 6.pdf", "Balancete 5.pdf",
                            "DAS 5.pdf"]

"""Buscar documentos: by name (case and accents ignored), filtered by company, department,
competência and tipo, 50 a page; a bad filter is said next to the field (never a 500); only what
the person sees, staff included."""
from __future__ import annotations

import html
import re
from datetime import date
from urllib.parse import urlencode

from services.documents.services import Metadata
from services.users import models as users_models
from services.users import services as users_services
from services.users.tests.conftest import users_db
from testsupport.guias import make_cnpj, text_pdf

from .client_support import department_id, new_company, rows
from .conftest import login, publish


def search(client, w, **params):
    return client.get(f"/documentos/e/{w.beta.slug}/busca?" + urlencode(params))


def names(page) -> list[str]:
    """The names in the results (the Nome column), sorted."""
    return sorted(html.unescape(n).strip() for n in re.findall(r'<td data-label="Nome">(?:<a [^>]*>)?([^<]+)', page.text))


def doc(config, w, name, *, department="Fiscal", company_id=None, competencia=None, tipo=None):
    meta = Metadata(competencia=competencia, guia_tipo=tipo, vencimento=date(2026, 12, 20) if tipo else None)
    return publish(config, firm_id=w.beta.id, company_id=company_id or w.beta_company.id, department_name=department,
                   data=text_pdf(name), name=name, by=w.bruno, meta=meta)


def test_search_by_name_ignores_case_and_accents_and_filters_combine(config, docworld, bus, browser_client):
    w = docworld
    other = new_company(config, bus, firm=w.beta, name="Outra Empresa Ltda", cnpj=make_cnpj(299))
    with_carlos = new_company(config, bus, firm=w.beta, name="Segunda Oficina Ltda", cnpj=make_cnpj(298))
    with users_db(config).begin() as s:  # Carlos gets a second company at Beta
        cu = s.get(users_models.ClientUser, w.carlos_at_beta.id)
        users_services.update_client_user(s, firm=s.get(users_models.Firm, w.beta.id), client_user=cu, name=cu.name,
                                          email=cu.email, company_ids=[w.beta_company.id, with_carlos])
    bus.pump()
    doc(config, w, "AÇÃO trabalhista.pdf", department="Societário")
    doc(config, w, "Contrato de locação.pdf", department="Societário", company_id=with_carlos)
    doc(config, w, "DAS 10-2026.pdf", competencia="10/2026", tipo="DAS")
    doc(config, w, "DARF 10-2026.pdf", competencia="10/2026", tipo="DARF")
    doc(config, w, "DAS 09-2026.pdf", competencia="09/2026", tipo="DAS", company_id=with_carlos)
    doc(config, w, "Folha 10-2026.pdf", department="Pessoal", competencia="10/2026")
    doc(config, w, "Ação da outra empresa.pdf", company_id=other)
    publish(config, firm_id=w.alfa.id, company_id=w.alfa_company.id, department_name="Fiscal", data=text_pdf("x"),
            name="DAS da Alfa 10-2026.pdf", by=w.ana, meta=Metadata(competencia="10/2026", guia_tipo="DAS"))
    login(browser_client, config, w.carlos)

    everything = search(browser_client, w)
    assert everything.status_code == 200 and len(rows(everything.text)) == 6
    for absent in ("Ação da outra empresa.pdf", "Outra Empresa Ltda", "DAS da Alfa"):
        assert absent not in everything.text
    assert names(search(browser_client, w, q="acao")) == ["AÇÃO trabalhista.pdf", "Contrato de locação.pdf"]
    assert names(search(browser_client, w, q="AÇÃO T")) == ["AÇÃO trabalhista.pdf"]
    assert names(search(browser_client, w, q="  locaÇão ")) == ["Contrato de locação.pdf"]
    assert names(search(browser_client, w, q="das")) == ["DAS 09-2026.pdf", "DAS 10-2026.pdf"]
    assert names(search(browser_client, w, q="%")) == [] and names(search(browser_client, w, q="_")) == []
    assert names(search(browser_client, w, competencia="10/2026")) == [
        "DARF 10-2026.pdf", "DAS 10-2026.pdf", "Folha 10-2026.pdf"]
    assert names(search(browser_client, w, competencia="10/2026", tipo="DAS")) == ["DAS 10-2026.pdf"]
    assert names(search(browser_client, w, tipo="DAS")) == ["DAS 09-2026.pdf", "DAS 10-2026.pdf"]
    assert names(search(browser_client, w, empresa=str(with_carlos))) == [
        "Contrato de locação.pdf", "DAS 09-2026.pdf"]
    societario = department_id(config, w.beta.id, "Societário")
    assert names(search(browser_client, w, departamento=str(societario))) == [
        "AÇÃO trabalhista.pdf", "Contrato de locação.pdf"]
    assert names(search(browser_client, w, departamento=str(societario), empresa=str(w.beta_company.id))) == [
        "AÇÃO trabalhista.pdf"]
    nothing = search(browser_client, w, q="inexistente")
    assert nothing.status_code == 200 and "Nenhum documento encontrado para esta busca." in nothing.text

    # staff search with their own Access: Bruno (Administrador) sees every company's
    login(browser_client, config, w.bruno)
    assert names(search(browser_client, w, q="ação")) == [
        "AÇÃO trabalhista.pdf", "Ação da outra empresa.pdf", "Contrato de locação.pdf"]
    # and Ana, Alfa's, does not reach Beta's search at all
    login(browser_client, config, w.ana)
    assert search(browser_client, w, q="ação").status_code == 404


def test_a_bad_filter_is_said_next_to_its_field_and_nothing_is_searched(config, docworld, bus, browser_client):
    w = docworld
    doc(config, w, "DAS 10-2026.pdf", competencia="10/2026", tipo="DAS")
    login(browser_client, config, w.carlos)
    cases = {
        "competencia": ("13/2026", "Informe a competência como MM/AAAA"),
        "tipo": ("Boleto", "Escolha um tipo da lista."),
        "empresa": ("não-é-um-id", "Escolha uma empresa da lista."),
        "departamento": ("123", "Escolha um departamento da lista."),
        "pagina": ("0", "Página inválida."),
        "q": ("x" * 201, "Texto muito longo."),
    }
    for field, (value, message) in cases.items():
        page = search(browser_client, w, **{field: value})
        assert page.status_code == 422, field
        assert message in page.text, field
        assert rows(page.text) == [], field
    # another firm's company, and a company of the firm that is not his: the same message as a bad id
    other = new_company(config, bus, firm=w.beta, name="Outra Empresa Ltda", cnpj=make_cnpj(299))
    for company_id in (w.alfa_company.id, other):
        page = search(browser_client, w, empresa=str(company_id))
        assert page.status_code == 422 and "Escolha uma empresa da lista." in page.text
        assert "Outra Empresa" not in page.text and "Padaria" not in page.text
    alfa_fiscal = department_id(config, w.alfa.id, "Fiscal")
    page = search(browser_client, w, departamento=str(alfa_fiscal))
    assert page.status_code == 422 and "Escolha um departamento da lista." in page.text
    # what was typed stays in the form
    page = search(browser_client, w, q="das", competencia="2026-10")
    assert 'value="das"' in page.text and 'value="2026-10"' in page.text


def test_results_come_fifty_a_page(config, docworld, bus, browser_client):
    w = docworld
    for n in range(53):
        doc(config, w, f"Recibo {n:02d}.pdf", department=("Fiscal", "Pessoal")[n % 2])
    login(browser_client, config, w.carlos)
    first = search(browser_client, w, q="recibo")
    assert len(rows(first.text)) == 50 and "Próxima ›" in first.text and "‹ Anterior" not in first.text
    second = search(browser_client, w, q="recibo", pagina=2)
    assert names(second) == ["Recibo 00.pdf", "Recibo 01.pdf", "Recibo 02.pdf"]
    assert "‹ Anterior" in second.text and "Próxima ›" not in second.text
    assert "q=recibo" in second.text.split("‹ Anterior")[0].rsplit("href=", 1)[1]  # the filters stay in the pager
    assert set(names(first)).isdisjoint(names(second))

"""Distribuir automaticamente: what a batch's guias say (read from their text) and the company each
is proposed for, among the firm's companies; nothing guessed, nothing filed without a clear match."""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from stdnum.br import cnpj as stdnum_cnpj

from services.documents import distribution
from services.documents.distribution import CompanyIndex, read_guia
from services.documents.inspection import CorruptPdf
from testsupport import guias

PADARIA = "12345678000195"  # printed 12.345.678/0001-95
OFICINA = guias.make_cnpj(2)
OUTRA_FIRMA = guias.make_cnpj(3)  # a valid CNPJ that is no company of this firm
ALFANUMERICO = "12ABC34501DE35"  # July 2026's alphanumeric CNPJ, printed 12.ABC.345/01DE-35
PRODUTOR_CPF = "12345678909"  # a person-company: the documents service only knows "***.***.*89-09"
COMPANIES = [
    ("padaria", "cnpj", PADARIA),
    ("oficina", "cnpj", OFICINA),
    ("nova", "cnpj", ALFANUMERICO),
    ("produtor", "cpf", "***.***.*89-09"),
]


def _read(pdf: bytes) -> distribution.GuiaReading:
    return read_guia(io.BytesIO(pdf))


def _propose(pdf: bytes, companies=COMPANIES) -> distribution.Proposal:
    return distribution.propose(_read(pdf), companies)


# --------------------------------------------------------------------------- what a guia says

def test_a_das_is_read_from_its_printed_labels():
    reading = _read(guias.das_guia("12.345.678/0001-95", "Outubro/2026", "20/11/2026", "1.234,56"))
    assert reading == distribution.GuiaReading(
        text_found=True, cnpjs=[PADARIA], cpfs=[], competencia="10/2026", vencimento=date(2026, 11, 20),
        valor=Decimal("1234.56"), tipo="DAS")


def test_a_darf_with_an_unpunctuated_cnpj_and_pa():
    reading = _read(guias.darf_guia(OFICINA, "10/2026", date(2026, 11, 20), Decimal("987.65")))
    assert (reading.cnpjs, reading.competencia, reading.vencimento, reading.valor, reading.tipo) == \
        ([OFICINA], "10/2026", date(2026, 11, 20), Decimal("987.65"), "DARF")


def test_a_barcode_block_that_passes_for_a_cpf_is_no_cpf():
    """The DAS's barcode line holds 12345678909 (a valid CPF, the produtor's) as a block followed
    by its check digit: the DAS names the padaria only."""
    reading = _read(guias.das_guia())
    assert reading.cpfs == []
    proposal = distribution.propose(reading, COMPANIES)
    assert (proposal.status, proposal.company_id) == ("identified", "padaria")


@pytest.mark.parametrize("printed, competencia", [
    ("Período de Apuração: Outubro/2026", "10/2026"),
    ("PERÍODO DE APURAÇÃO: 01/2026", "01/2026"),
    ("Competência: Março de 2026", "03/2026"),
    ("Competência: 1/2026", "01/2026"),
    ("Competencia  dez/2025", "12/2025"),
    ("PA 31/10/2026", "10/2026"),  # a DARF's period: the month's last day
    ("Período de Apuração:\nJaneiro/2026", "01/2026"),
])
def test_the_competencia_from_each_label_and_form(printed, competencia):
    lines = printed.split("\n")
    assert _read(guias.text_pdf("CNPJ: 12.345.678/0001-95", *lines)).competencia == competencia


@pytest.mark.parametrize("lines, vencimento", [
    (["Data de Vencimento: 20/11/2026", "Pagar este documento até: 30/11/2026"], date(2026, 11, 20)),
    (["Pagar este documento até 30/11/2026"], date(2026, 11, 30)),
    (["Pagar até: 05/12/2026"], date(2026, 12, 5)),
    (["Data limite para pagamento: 15/12/2026"], date(2026, 12, 15)),
    (["VENCIMENTO 20/01/2027"], date(2027, 1, 20)),
    (["Vencimento: 31/02/2026"], None),  # no such day
])
def test_the_due_date_prefers_vencimento_over_pagar_ate(lines, vencimento):
    assert _read(guias.text_pdf("CNPJ: 12.345.678/0001-95", *lines)).vencimento == vencimento


@pytest.mark.parametrize("printed, valor", [
    ("Valor Total: 1.234,56", Decimal("1234.56")),
    ("Valor a recolher: R$ 12.345.678,90", Decimal("12345678.90")),
    ("Total a pagar R$ 89,10", Decimal("89.10")),
    ("(=) Valor do Documento 1234,00", Decimal("1234.00")),
    ("Valor Total do Documento: 0,00", Decimal("0.00")),
])
def test_the_amount_in_the_brazilian_format(printed, valor):
    assert _read(guias.text_pdf("CNPJ: 12.345.678/0001-95", printed)).valor == valor


@pytest.mark.parametrize("title, lines, tipo", [
    ("Documento de Arrecadação do Simples Nacional", ["Tributos: ICMS ISS"], "DAS"),
    ("Documento de Arrecadação de Receitas Federais", [], "DARF"),
    ("Documento de Arrecadação de Receitas Federais", ["Origem: DCTFWeb - Mensal"], "DCTFWeb"),
    ("GUIA DA PREVIDÊNCIA SOCIAL - GPS", [], "GPS"),
    ("Guia do FGTS Digital", ["GFD - Guia de recolhimento"], "FGTS"),
    ("Prefeitura Municipal de Campinas", ["Guia de recolhimento do ISSQN"], "ISS"),
    ("GARE-ICMS", ["Secretaria da Fazenda do Estado de São Paulo"], "ICMS"),
    ("Recibo de entrega", ["Declaração recebida"], None),
    ("Guia de recolhimento", ["ICMS e ISS"], None),  # two keywords and no title: no guess
])
def test_the_type_from_the_printed_title(title, lines, tipo):
    assert _read(guias.text_pdf("CNPJ: 12.345.678/0001-95", *lines, title=title)).tipo == tipo


def test_values_printed_without_a_label_are_not_guessed():
    reading = _read(guias.text_pdf("CNPJ: 12.345.678/0001-95", "20/11/2026", "10/2026", "1.234,56",
                                   title="Guia de recolhimento"))
    assert (reading.text_found, reading.competencia, reading.vencimento, reading.valor, reading.tipo) == \
        (True, None, None, None, None)


def test_two_guias_in_one_pdf_that_disagree_give_no_value():
    reading = _read(guias.das_guia("12.345.678/0001-95", "Outubro/2026", "20/11/2026", "1.234,56",
                                   "Período de Apuração: Novembro/2026", "Data de Vencimento: 20/12/2026",
                                   "Valor Total: 99,00"))
    assert (reading.competencia, reading.vencimento, reading.valor, reading.tipo) == (None, None, None, "DAS")


def test_a_cnpj_printed_twice_is_found_once():
    reading = _read(guias.das_guia("12.345.678/0001-95", "Outubro/2026", "20/11/2026", "1,00",
                                   "Contribuinte: 12345678000195"))
    assert reading.cnpjs == [PADARIA]


def test_an_alphanumeric_cnpj_is_found():
    reading = _read(guias.das_guia(stdnum_cnpj.format(ALFANUMERICO)))
    assert reading.cnpjs == [ALFANUMERICO]
    assert distribution.propose(reading, COMPANIES).company_id == "nova"


def test_an_image_only_pdf_has_no_text_and_goes_to_a_person():
    reading = _read(guias.image_only_pdf())
    assert reading == distribution.GuiaReading(False, [], [], None, None, None, None)
    proposal = distribution.propose(reading, COMPANIES)
    assert (proposal.status, proposal.label, proposal.company_id) == ("unidentified", "não identificado", None)


@pytest.mark.parametrize("content", [guias.das_guia()[:600], b"<html>nope</html>", b""],
                         ids=["truncated", "html", "empty"])
def test_an_unreadable_pdf_is_refused(content):
    with pytest.raises(CorruptPdf) as refused:
        _read(content)
    assert refused.value.message == "O PDF está corrompido ou não pôde ser lido."


# --------------------------------------------------------------------------- the company proposed

def test_the_one_company_named_is_identified_with_the_metadata():
    proposal = _propose(guias.darf_guia(OFICINA, "09/2026", "20/10/2026", "50,00"))
    assert proposal == distribution.Proposal(
        status="identified", company_id="oficina", candidates=["oficina"], matched_by="cnpj",
        competencia="09/2026", vencimento=date(2026, 10, 20), valor=Decimal("50.00"), tipo="DARF")
    assert proposal.label == "identificado"


def test_a_cnpj_with_a_wrong_check_digit_matches_nothing():
    wrong = "12.345.678/0001-96"
    reading = _read(guias.das_guia(wrong))
    assert reading.cnpjs == []
    # even against a firm that (wrongly) holds those digits: an invalid number is never read
    proposal = distribution.propose(reading, [*COMPANIES, ("typo", "cnpj", "12345678000196")])
    assert (proposal.status, proposal.label, proposal.company_id) == ("unidentified", "não identificado", None)
    assert (proposal.competencia, proposal.valor) == ("10/2026", Decimal("1234.56"))  # still shown for review


def test_another_firms_company_is_not_identified():
    assert _propose(guias.darf_guia(OUTRA_FIRMA)).status == "unidentified"


def test_two_of_the_firms_companies_in_one_guia_are_ambiguous():
    proposal = _propose(guias.das_guia("12.345.678/0001-95", "Outubro/2026", "20/11/2026", "1.234,56",
                                       f"Tomador do serviço: CNPJ {stdnum_cnpj.format(OFICINA)}"))
    assert (proposal.status, proposal.label, proposal.company_id, proposal.candidates, proposal.matched_by) == \
        ("ambiguous", "ambíguo", None, ["padaria", "oficina"], None)


def test_a_cpf_matches_the_one_person_company_with_its_last_digits():
    pdf = guias.darf_guia("123.456.789-09", "10/2026")
    assert _read(pdf).cpfs == [PRODUTOR_CPF]
    proposal = _propose(pdf)
    assert (proposal.status, proposal.company_id, proposal.matched_by) == ("identified", "produtor", "cpf")


def test_a_cpf_whose_last_digits_two_companies_share_is_ambiguous():
    twin = ("outro produtor", "cpf", "***.***.*89-09")
    proposal = _propose(guias.darf_guia("12345678909"), [*COMPANIES, twin])
    assert (proposal.status, proposal.candidates) == ("ambiguous", ["produtor", "outro produtor"])


def test_a_cnpj_and_another_companys_cpf_are_ambiguous_not_filed_by_the_cnpj():
    proposal = _propose(guias.darf_guia(OFICINA, "10/2026", "20/11/2026", "1,00", "Responsável: 123.456.789-09"))
    assert (proposal.status, proposal.candidates) == ("ambiguous", ["oficina", "produtor"])


def test_a_batch_uses_one_index_of_the_firms_companies():
    index = CompanyIndex(COMPANIES)
    batch = [guias.das_guia("12.345.678/0001-95"), guias.darf_guia(OFICINA), guias.image_only_pdf()]
    assert [distribution.propose(_read(pdf), index).company_id for pdf in batch] == ["padaria", "oficina", None]

"""Documents for the demo data of `make run`, the tests and bench/: guias as an accounting system
prints them, made with fpdf2 (one-page PDFs whose text pypdf extracts line by line). The core fonts
(Helvetica) write Latin-1: pt-BR accents are fine, typographic dashes and quotes are not."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from fpdf import FPDF

# A fixed creation date: the same arguments make the same bytes (fpdf2 stamps the current second).
CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def one_page_pdf() -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_creator("Sistema Contábil de Teste")
    pdf.set_creation_date(CREATED)
    pdf.add_page()
    return pdf


def text_pdf(*lines: str, title: str | None = None) -> bytes:
    """A page with `title` in bold, then each line."""
    pdf = one_page_pdf()
    if title:
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in lines:
        pdf.cell(0, 7, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def brl(value: Decimal | str) -> str:
    """1.234,56 (a Decimal in the Brazilian format; a str as given)."""
    if isinstance(value, str):
        return value
    whole, cents = f"{value:,.2f}".split(".")
    return f"{whole.replace(',', '.')},{cents}"


def _day(value: date | str) -> str:
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else value


def das_guia(cnpj: str = "12.345.678/0001-95", competencia: str = "Outubro/2026",
             vencimento: date | str = "20/11/2026", valor: Decimal | str = "1.234,56",
             *extra_lines: str) -> bytes:
    """A DAS as the PGDAS-D prints it: the title, the CNPJ, the period, the due date, the total,
    the taxes it collects (ICMS and ISS among them: the title, not those, makes it a DAS), the
    document number and the barcode line (blocks of 11 digits and a check digit, one of which
    would pass for a CPF: a barcode block is no CPF)."""
    return text_pdf(
        "Receita Federal do Brasil",
        f"CNPJ: {cnpj}",
        "Razão Social: CONTRIBUINTE DE TESTE LTDA",
        f"Período de Apuração: {competencia}",
        f"Data de Vencimento: {_day(vencimento)}",
        "Número do Documento: 07.20.26305.1234567-8",
        "Composição do Documento de Arrecadação: IRPJ CSLL COFINS PIS/Pasep INSS/CPP ICMS ISS",
        f"Valor Total: {brl(valor)}",
        "85890000012 3 12345678909 9 05072026305 1 48620001234 5",
        *extra_lines,
        title="Documento de Arrecadação do Simples Nacional",
    )


def darf_guia(cnpj: str = "12345678000195", periodo: str = "10/2026",
              vencimento: date | str = "20/11/2026", valor: Decimal | str = "987,65",
              *extra_lines: str) -> bytes:
    """A DARF with the CNPJ unpunctuated and the period after "PA" (as the Sicalc prints it)."""
    return text_pdf(
        "Ministério da Fazenda - Secretaria da Receita Federal do Brasil",
        f"CPF ou CNPJ: {cnpj}",
        f"PA {periodo}",
        "Código da Receita: 2089",
        f"Data de vencimento: {_day(vencimento)}",
        f"Valor a recolher: R$ {brl(valor)}",
        *extra_lines,
        title="Documento de Arrecadação de Receitas Federais",
    )

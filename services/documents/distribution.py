"""Distribuir automaticamente: staff drop a batch of PDFs (a month's guias, as the accounting
system produced them); for each, the text is read once and a company and the guia's metadata are
proposed, for the staff to review before anything is filed.

Nothing is guessed: a value is read only when printed after a clear label, and a label printed
twice with different values (two guias in one PDF) gives None. Pure functions, no database.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import IO

from marshmallow import ValidationError
from stdnum.br import cpf as stdnum_cpf

from services.common.documents import N_, clean_cnpj

from .inspection import open_pdf

MAX_PAGES = 10  # a guia has one or two pages; a 300-page report is not a guia, its first pages suffice

# --------------------------------------------------------------------------- patterns (compiled once)

# A document number stands alone: not glued to letters or digits, not followed by "/x" or ".x"
# or "-x" (part of a longer code), nor by a lone digit (a barcode block: "85890000012 3").
_BEFORE = r"(?<![0-9A-Za-z./-])"
_AFTER = r"(?![0-9A-Za-z/]|[.-][0-9A-Za-z]|[ \t]\d(?!\d))"
# CNPJ: numeric or, from July 2026, alphanumeric (12 letters or digits, then two check digits).
_CNPJ = re.compile(_BEFORE + r"([0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?[0-9]{2})" + _AFTER)
_CPF = re.compile(_BEFORE + r"([0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2})" + _AFTER)
_PUNCTUATION = str.maketrans("", "", "./-")

_MONTHS = {name: number for number, names in enumerate((
    ("janeiro", "jan"), ("fevereiro", "fev"), ("março", "marco", "mar"), ("abril", "abr"), ("maio", "mai"),
    ("junho", "jun"), ("julho", "jul"), ("agosto", "ago"), ("setembro", "set"), ("outubro", "out"),
    ("novembro", "nov"), ("dezembro", "dez")), start=1) for name in names}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True)) + r"|1[0-2]|0?[1-9]"
_LABEL_END = r"\s*[:\-]?\s*"  # after a label: spaces or a line break, an optional colon or dash
# "Período de Apuração: Outubro/2026", "Competência: 10/2026", "PA 10/2026", "PA 31/10/2026" (a
# DARF's period is the last day of the month: its month is the competência).
_COMPETENCIA = re.compile(
    r"(?:\b(?:per[íi]odo\s+de\s+apura[çc][ãa]o|compet[êe]ncia)|(?-i:\bPA\b))" + _LABEL_END
    + rf"(?:[0-3]?\d/)?(?P<month>{_MONTH})\s*(?:/|-|\bde\b)\s*(?P<year>(?:19|20)\d\d)(?!\d)",
    re.IGNORECASE)
_DATE = r"(?P<day>\d{1,2})/(?P<month>\d{1,2})/(?P<year>\d{4})(?!\d)"
# The due date; "Pagar este documento até" and "Data limite" only when no due date is printed
# (on a DAS, "Pagar este documento até" is how long the document may be paid, not the due date).
_VENCIMENTO = re.compile(r"\b(?:data\s+de\s+vencimento|vencimento)" + _LABEL_END + _DATE, re.IGNORECASE)
_PAGAR_ATE = re.compile(r"\b(?:pagar(?:\s+este\s+documento)?\s+at[ée]|data\s+limite(?:\s+(?:para|de)\s+pagamento)?)"
                        + _LABEL_END + _DATE, re.IGNORECASE)
_VALOR = re.compile(
    r"\b(?:valor\s+total(?:\s+do\s+documento|\s+a\s+(?:pagar|recolher))?|valor\s+a\s+(?:recolher|pagar)"
    r"|total\s+a\s+(?:pagar|recolher)|valor\s+do\s+documento)" + _LABEL_END
    + r"(?:R\$\s*)?(?P<amount>\d{1,3}(?:\.\d{3})+,\d{2}|\d+,\d{2})(?![\d,])", re.IGNORECASE)

# The type, from the printed title. A title names one type for sure; the keywords only when no
# title is printed (a DAS lists ICMS and ISS among the taxes it collects).
_TITLES = (
    ("DAS", re.compile(r"documento\s+de\s+arrecada[çc][ãa]o\s+do\s+simples\s+nacional", re.IGNORECASE)),
    ("DARF", re.compile(r"documento\s+de\s+arrecada[çc][ãa]o\s+de\s+receitas\s+federais", re.IGNORECASE)),
    ("GPS", re.compile(r"guia\s+da\s+previd[êe]ncia\s+social", re.IGNORECASE)),
    ("FGTS", re.compile(r"guia\s+do\s+fgts\s+digital", re.IGNORECASE)),
)
_DCTFWEB = re.compile(r"\bdctf\s?web\b", re.IGNORECASE)  # a DCTFWeb guia is a DARF that says so
_KEYWORDS = (
    ("FGTS", re.compile(r"\b(?:FGTS|GFD)\b")),
    ("DCTFWeb", _DCTFWEB),
    ("ICMS", re.compile(r"\b(?:ICMS|GARE|DARE)\b")),
    ("ISS", re.compile(r"\bISS(?:QN)?\b")),
)
TIPOS = ("DAS", "DARF", "GPS", "FGTS", "DCTFWeb", "ISS", "ICMS")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class GuiaReading:
    """What a guia's text says. `text_found` is False for a PDF without text (a scanned guia);
    `cnpjs` (14 characters, uppercase, no punctuation) and `cpfs` (11 digits) hold each valid
    number printed, in order, once; the rest is None unless printed after a clear label."""
    text_found: bool
    cnpjs: list[str]
    cpfs: list[str]
    competencia: str | None  # "MM/AAAA"
    vencimento: date | None
    valor: Decimal | None
    tipo: str | None  # one of TIPOS


def read_guia(fileobj: IO[bytes]) -> GuiaReading:
    """Reads the text of the PDF's pages (the first MAX_PAGES) once and what it says.
    CorruptPdf (from inspection) when the PDF cannot be opened; a page whose text pypdf cannot
    extract counts as a page without text (the file may be fine to store: it is a PDF whose page
    count can be read, only its distribution needs a person)."""
    reader = open_pdf(fileobj)
    texts = []
    for page in reader.pages[:MAX_PAGES]:
        try:
            texts.append(page.extract_text())
        except Exception:  # a broken content stream or font: no text from this page
            continue
    return read_text("\n".join(texts))


def read_text(text: str) -> GuiaReading:
    """`read_guia` of an already extracted text."""
    text = unicodedata.normalize("NFKC", text)  # no-break spaces, ligatures, decomposed accents
    if not any(ch.isalnum() for ch in text):
        return GuiaReading(False, [], [], None, None, None, None)
    return GuiaReading(
        text_found=True,
        cnpjs=_numbers(_CNPJ, text, _valid_cnpj),
        cpfs=_numbers(_CPF, text, _valid_cpf),
        competencia=_competencia(text),
        vencimento=_single(_dates(_VENCIMENTO, text)) if _VENCIMENTO.search(text) else _single(_dates(_PAGAR_ATE, text)),
        valor=_single(Decimal(m["amount"].replace(".", "").replace(",", ".")) for m in _VALOR.finditer(text)),
        tipo=_tipo(text),
    )


def _valid_cnpj(number: str) -> bool:
    try:
        clean_cnpj(number)
    except ValidationError:
        return False
    return True


def _valid_cpf(number: str) -> bool:
    return len(set(number)) > 1 and stdnum_cpf.is_valid(number)  # 111.111.111-11 passes the check digits


def _numbers(pattern: re.Pattern, text: str, valid: Callable[[str], bool]) -> list[str]:
    found: dict[str, None] = {}
    for match in pattern.finditer(text):
        number = match[1].translate(_PUNCTUATION)
        if number not in found and valid(number):
            found[number] = None
    return list(found)


def _single(values: Iterable):
    """The value when every occurrence agrees, None when there is none or they disagree."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _dates(pattern: re.Pattern, text: str) -> Iterable[date | None]:
    for match in pattern.finditer(text):
        try:
            yield date(int(match["year"]), int(match["month"]), int(match["day"]))
        except ValueError:  # 31/02/2026: not a date
            yield None


def _competencia(text: str) -> str | None:
    def months():
        for match in _COMPETENCIA.finditer(text):
            month = match["month"].lower()
            yield f"{_MONTHS[month] if month in _MONTHS else int(month):02d}/{match['year']}"
    return _single(months())


def _tipo(text: str) -> str | None:
    titles = {tipo for tipo, pattern in _TITLES if pattern.search(text)}
    if titles:
        if titles == {"DARF"} and _DCTFWEB.search(text):
            return "DCTFWeb"
        return _single(titles)
    return _single(tipo for tipo, pattern in _KEYWORDS if pattern.search(text))


# --------------------------------------------------------------------------- proposing

IDENTIFIED, AMBIGUOUS, UNIDENTIFIED = "identified", "ambiguous", "unidentified"
STATUS_LABELS = {IDENTIFIED: N_("identificado"), AMBIGUOUS: N_("ambíguo"), UNIDENTIFIED: N_("não identificado")}


@dataclass(frozen=True)
class Proposal:
    """Where a guia would go: `status` (IDENTIFIED: exactly one of the firm's companies is named
    in it, `company_id`; AMBIGUOUS: several, `candidates`; UNIDENTIFIED: none, or no text),
    `matched_by` ("cnpj" or "cpf": how the one company was found) and the guia's metadata."""
    status: str
    company_id: object | None
    candidates: list
    matched_by: str | None
    competencia: str | None
    vencimento: date | None
    valor: Decimal | None
    tipo: str | None

    @property
    def label(self) -> str:
        """The status in the review table (a pt-BR msgid)."""
        return STATUS_LABELS[self.status]


def mask_cpf(digits: str) -> str:
    """`***.***.*89-09`: the last four digits of a CPF, all the documents service knows of a
    person-company's CPF (events.CompanyState)."""
    return f"***.***.*{digits[7:9]}-{digits[9:11]}"


class CompanyIndex:
    """The firm's companies by document, built once for a batch (propose builds one per call
    when given the list): `by_cnpj` (14 characters) and `by_cpf_mask` ("***.***.*NN-NN") to ids."""

    def __init__(self, companies: Iterable[tuple[object, str, str]]):
        self.by_cnpj: dict[str, list] = {}
        self.by_cpf_mask: dict[str, list] = {}
        for company_id, kind, document in companies:
            (self.by_cnpj if kind == "cnpj" else self.by_cpf_mask).setdefault(document, []).append(company_id)


def propose(reading: GuiaReading, companies: CompanyIndex | Iterable[tuple[object, str, str]]) -> Proposal:
    """The company a guia belongs to, among the firm's `companies` — (company_id, document_kind,
    document): a CNPJ's 14 characters, or a CPF's mask "***.***.*NN-NN" — from the numbers
    printed in it: a CNPJ matches exactly; a CPF matches the person-company whose mask is the
    CPF's (when two of the firm's person-companies share that mask, both match). Every company
    matched, by CNPJ or by CPF, counts: exactly one is IDENTIFIED, more than one is AMBIGUOUS (a
    guia naming a client and another client's partner goes to a person, not to the first rule
    that fits).

    Is a match by CPF mask safe enough? The mask keeps 4 of 11 digits, so about one CPF in
    10,000 shares a given mask: a CPF printed in a guia that is NOT one of the firm's
    person-companies (an employee, a partner, a barcode block that passes the check digits)
    matches one of the firm's k person-companies with a chance of about k/10,000. A match by CPF
    is therefore a proposal, never a filing: it is marked `matched_by="cpf"` for the review table
    to say so, and a guia whose CNPJ also matched a company becomes AMBIGUOUS rather than filed
    by the CNPJ. It is safe enough for that; the staff's review is what makes it safe, and a
    whole CPF never reaches this service to do better.
    """
    index = companies if isinstance(companies, CompanyIndex) else CompanyIndex(companies)
    matched: dict[object, str] = {}
    for cnpj in reading.cnpjs:
        for company_id in index.by_cnpj.get(cnpj, ()):
            matched.setdefault(company_id, "cnpj")
    for cpf in reading.cpfs:
        for company_id in index.by_cpf_mask.get(mask_cpf(cpf), ()):
            matched.setdefault(company_id, "cpf")
    candidates = list(matched)
    status = IDENTIFIED if len(candidates) == 1 else AMBIGUOUS if candidates else UNIDENTIFIED
    return Proposal(
        status=status,
        company_id=candidates[0] if status == IDENTIFIED else None,
        candidates=candidates,
        matched_by=matched[candidates[0]] if status == IDENTIFIED else None,
        competencia=reading.competencia, vencimento=reading.vencimento,
        valor=reading.valor, tipo=reading.tipo,
    )

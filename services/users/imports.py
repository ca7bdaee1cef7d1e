"""Reading an import file (CSV or XLSX) as a stream of rows, without loading it whole.

Header: Nome;CPF;Telefone;E-mail;Empresas (CSV separated by `;` or `,`, UTF-8). A row is a dict
with the keys name, cpf, phone, email, companies (strings, possibly empty) and `line` (the
line number in the file, the header being line 1).
"""
from __future__ import annotations

import codecs
import csv
import unicodedata
from collections.abc import Iterator
from typing import IO

from flask_babel import gettext as _

MAX_ROWS = 20_000
MAX_ROWS_TEXT = "20.000"
HEADERS = {"nome": "name", "cpf": "cpf", "telefone": "phone", "e-mail": "email", "email": "email",
           "e-mail de contato": "email", "empresas": "companies"}
REQUIRED = ("name", "email")


class ImportFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, header); a pt-BR message."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _key(header) -> str:
    text = unicodedata.normalize("NFKD", str(header or "")).encode("ascii", "ignore").decode()
    return " ".join(text.strip().lower().split())


def _columns(header_row) -> list[str | None]:
    columns = [HEADERS.get(_key(h)) for h in header_row]
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        raise ImportFileError(_("Cabeçalho inválido: a primeira linha deve ser "
                                "Nome;CPF;Telefone;E-mail;Empresas."))
    return columns


def _rows(header_row, data_rows) -> Iterator[dict]:
    columns = _columns(header_row)
    count = 0
    for line, values in data_rows:
        cells = ["" if v is None else str(v).strip() for v in values]
        if not any(cells):
            continue  # blank lines are not rows
        count += 1
        if count > MAX_ROWS:
            raise ImportFileError(_("O arquivo tem mais de %(n)s linhas. Divida-o em arquivos menores.",
                                    n=MAX_ROWS_TEXT))
        row = {"line": line, "name": "", "cpf": "", "phone": "", "email": "", "companies": ""}
        for column, cell in zip(columns, cells, strict=False):
            if column:
                row[column] = cell
        yield row


def read_csv(stream: IO[bytes]) -> Iterator[dict]:
    text = codecs.getreader("utf-8-sig")(stream, "strict")
    try:
        first = text.readline()
        delimiter = ";" if first.count(";") >= first.count(",") else ","
        header = next(csv.reader([first], delimiter=delimiter), [])
        reader = csv.reader(text, delimiter=delimiter)
        yield from _rows(header, ((reader.line_num + 1, values) for values in reader))
    except UnicodeDecodeError:
        raise ImportFileError(_("O arquivo não está em UTF-8. Salve-o como CSV UTF-8 e tente de novo.")) from None
    except csv.Error:
        raise ImportFileError(_("Não foi possível ler o arquivo CSV.")) from None


def read_xlsx(stream: IO[bytes]) -> Iterator[dict]:
    import zipfile

    from openpyxl import load_workbook
    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise ImportFileError(_("Não foi possível ler a planilha XLSX.")) from None
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise ImportFileError(_("O arquivo está vazio."))
        yield from _rows(header, ((n, values) for n, values in enumerate(rows, start=2)))
    finally:
        workbook.close()


def read_rows(filename: str, stream: IO[bytes]) -> Iterator[dict]:
    """Rows of an uploaded file, chosen by its extension; ImportFileError for what cannot be read."""
    name = (filename or "").lower()
    if name.endswith(".xlsx"):
        return read_xlsx(stream)
    if name.endswith((".csv", ".txt")):
        return read_csv(stream)
    raise ImportFileError(_("Envie um arquivo CSV ou XLSX."))


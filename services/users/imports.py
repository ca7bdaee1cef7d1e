"""Reading an import file (CSV or XLSX) as a stream of rows, without loading it whole.

Header: Nome;CPF;Telefone;E-mail;Empresas, optionally followed by Departamentos;Nível (CSV
separated by `;` or `,`, UTF-8; columns in any order). A row is a dict with the keys name, cpf,
phone, email, companies, departments, level (strings, possibly empty), `line` (the
line number in the file, the header being line 1) and `errors` (pt-BR messages about the cells
themselves: a cell with a control character — NUL, ESC, a line break… — is refused, the row
reported in the preview, and the cell kept with each such character shown as U+FFFD).
"""
from __future__ import annotations

import codecs
import csv
import unicodedata
from collections.abc import Iterator
from typing import IO

from flask_babel import gettext as _

from services.common.forms import has_control_characters, without_control_characters

MAX_ROWS = 20_000
MAX_ROWS_TEXT = "20.000"
HEADERS = {"nome": "name", "cpf": "cpf", "telefone": "phone", "e-mail": "email", "email": "email",
           "e-mail de contato": "email", "empresas": "companies", "departamentos": "departments",
           "nivel": "level", "nivel de acesso": "level"}
REQUIRED = ("name", "email")
COLUMN_LABELS = {"name": "Nome", "cpf": "CPF", "phone": "Telefone", "email": "E-mail", "companies": "Empresas",
                 "departments": "Departamentos", "level": "Nível"}


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
        cells = ["" if v is None else str(v) for v in values]
        if not any(c.strip() for c in cells):
            continue  # blank lines are not rows
        count += 1
        if count > MAX_ROWS:
            raise ImportFileError(_("O arquivo tem mais de %(n)s linhas. Divida-o em arquivos menores.",
                                    n=MAX_ROWS_TEXT))
        row: dict = {"line": line, "name": "", "cpf": "", "phone": "", "email": "", "companies": "",
                     "departments": "", "level": "", "errors": []}
        for column, cell in zip(columns, cells, strict=False):
            if not column:
                continue
            if has_control_characters(cell):
                row["errors"].append(_("%(column)s: a célula contém caracteres de controle (invisíveis), "
                                       "que não são permitidos.", column=COLUMN_LABELS[column]))
                cell = without_control_characters(cell)
            row[column] = cell.strip()
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


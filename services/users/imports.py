"""Reading an import file (CSV or XLSX) as a stream of rows, without loading it whole.

One reader for every kind of import; a `FileLayout` says which columns a kind's file has:
- client users (`CLIENT_USERS`): Nome;CPF;Telefone;E-mail;Empresas, optionally Departamentos;Nível
- companies (`COMPANIES`): Razão social;Nome fantasia;CNPJ/CPF;Código
(CSV separated by `;` or `,`, UTF-8; headers matched without case or accents). A row is a dict
with one string per column of the layout (possibly empty), `line` (the line number in the file,
the header being line 1) and `errors` (pt-BR messages about the cells themselves: a cell with a
control character — NUL, ESC, a line break… — is refused, the row reported in the preview, and
the cell kept with each such character shown as U+FFFD).
"""
from __future__ import annotations

import codecs
import csv
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from flask_babel import gettext as _

from services.common.forms import has_control_characters, without_control_characters

MAX_ROWS = 20_000
MAX_ROWS_TEXT = "20.000"


@dataclass(frozen=True)
class FileLayout:
    """The columns of one kind of import file."""

    headers: dict[str, str]      # a header (lower case, no accents) -> its column
    required: tuple[str, ...]    # columns the header must have
    labels: dict[str, str]       # column -> its name in the file (every column of a row, in order)
    header_text: str             # the first line, as the page shows it


CLIENT_USERS = FileLayout(
    headers={"nome": "name", "cpf": "cpf", "telefone": "phone", "e-mail": "email", "email": "email",
             "e-mail de contato": "email", "empresas": "companies", "departamentos": "departments",
             "nivel": "level", "nivel de acesso": "level"},
    required=("name", "email"),
    labels={"name": "Nome", "cpf": "CPF", "phone": "Telefone", "email": "E-mail", "companies": "Empresas",
            "departments": "Departamentos", "level": "Nível"},
    header_text="Nome;CPF;Telefone;E-mail;Empresas;Departamentos;Nível")

COMPANIES = FileLayout(
    headers={"razao social": "name", "nome fantasia": "trade_name", "cnpj/cpf": "document", "cnpj / cpf": "document",
             "cnpj ou cpf": "document", "cnpj": "document", "cpf": "document", "documento": "document",
             "codigo": "code", "codigo interno": "code"},
    required=("name", "document"),
    labels={"name": "Razão social", "trade_name": "Nome fantasia", "document": "CNPJ/CPF", "code": "Código"},
    header_text="Razão social;Nome fantasia;CNPJ/CPF;Código")

LAYOUTS = {"client_users": CLIENT_USERS, "companies": COMPANIES}


class ImportFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, header); a pt-BR message."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _key(header) -> str:
    text = unicodedata.normalize("NFKD", str(header or "")).encode("ascii", "ignore").decode()
    return " ".join(text.strip().lower().split())


def _columns(header_row, layout: FileLayout) -> list[str | None]:
    columns = [layout.headers.get(_key(h)) for h in header_row]
    missing = [k for k in layout.required if k not in columns]
    if missing:
        raise ImportFileError(_("Cabeçalho inválido: a primeira linha deve ser %(header)s.",
                                header=layout.header_text))
    return columns


def _rows(header_row, data_rows, layout: FileLayout) -> Iterator[dict]:
    columns = _columns(header_row, layout)
    count = 0
    for line, values in data_rows:
        cells = ["" if v is None else str(v) for v in values]
        if not any(c.strip() for c in cells):
            continue  # blank lines are not rows
        count += 1
        if count > MAX_ROWS:
            raise ImportFileError(_("O arquivo tem mais de %(n)s linhas. Divida-o em arquivos menores.",
                                    n=MAX_ROWS_TEXT))
        row: dict = {"line": line, **{column: "" for column in layout.labels}, "errors": []}
        for column, cell in zip(columns, cells, strict=False):
            if not column:
                continue
            if has_control_characters(cell):
                row["errors"].append(_("%(column)s: a célula contém caracteres de controle (invisíveis), "
                                       "que não são permitidos.", column=layout.labels[column]))
                cell = without_control_characters(cell)
            row[column] = cell.strip()
        yield row


def read_csv(stream: IO[bytes], layout: FileLayout = CLIENT_USERS) -> Iterator[dict]:
    text = codecs.getreader("utf-8-sig")(stream, "strict")
    try:
        first = text.readline()
        delimiter = ";" if first.count(";") >= first.count(",") else ","
        header = next(csv.reader([first], delimiter=delimiter), [])
        reader = csv.reader(text, delimiter=delimiter)
        yield from _rows(header, ((reader.line_num + 1, values) for values in reader), layout)
    except UnicodeDecodeError:
        raise ImportFileError(_("O arquivo não está em UTF-8. Salve-o como CSV UTF-8 e tente de novo.")) from None
    except csv.Error:
        raise ImportFileError(_("Não foi possível ler o arquivo CSV.")) from None


def read_xlsx(stream: IO[bytes], layout: FileLayout = CLIENT_USERS) -> Iterator[dict]:
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
        yield from _rows(header, ((n, values) for n, values in enumerate(rows, start=2)), layout)
    finally:
        workbook.close()


def read_rows(filename: str, stream: IO[bytes], kind: str = "client_users") -> Iterator[dict]:
    """Rows of an uploaded file of this kind of import, chosen by its extension; ImportFileError
    for what cannot be read."""
    layout = LAYOUTS[kind]
    name = (filename or "").lower()
    if name.endswith(".xlsx"):
        return read_xlsx(stream, layout)
    if name.endswith((".csv", ".txt")):
        return read_csv(stream, layout)
    raise ImportFileError(_("Envie um arquivo CSV ou XLSX."))

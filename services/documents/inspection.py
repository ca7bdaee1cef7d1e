"""What the upload page checks before it stores a file: its name, its type (from the content, never
from the extension) and, for a PDF, that it can be read.

Every refusal is a `RefusedFile` whose `.message` is a pt-BR msgid (marked with N_ for extraction):
the view translates it when it shows it. Nothing here touches a database, a request or the storage.
"""
from __future__ import annotations

import io
import re
import struct
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from services.common.documents import N_

if TYPE_CHECKING:
    from pypdf import PdfReader

# --------------------------------------------------------------------------- refusals


class RefusedFile(Exception):
    """A file the upload refuses; `.message` is the pt-BR text to show."""

    default_message = N_("O arquivo foi recusado.")

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class BadName(RefusedFile):
    default_message = N_("O nome do arquivo não é válido.")


class EmptyFile(RefusedFile):
    default_message = N_("O arquivo está vazio.")


class ForbiddenType(RefusedFile):
    """The content is none of the accepted types (see ACCEPTED_TYPES_MESSAGE)."""


class CorruptArchive(RefusedFile):
    default_message = N_("O arquivo compactado (ZIP) está corrompido ou não pôde ser lido.")


class CorruptPdf(RefusedFile):
    default_message = N_("O PDF está corrompido ou não pôde ser lido.")


# --------------------------------------------------------------------------- names

NAME_MAX = 200
SEPARATORS_MESSAGE = N_("O nome do arquivo não pode conter “/”, “\\” nem caracteres de controle (invisíveis).")
EMPTY_NAME_MESSAGE = N_("Informe o nome do arquivo.")
DOTS_MESSAGE = N_("O nome do arquivo não pode ser “.” nem “..”.")
LONG_NAME_MESSAGE = N_("O nome do arquivo pode ter no máximo 200 caracteres.")

# Cc: C0, DEL, C1; Cf: format characters (U+202E RIGHT-TO-LEFT OVERRIDE, which shows "fdp.exe" as
# "exe.pdf", zero-width spaces, BOM…); Cs: lone surrogates (cannot be encoded); Zl/Zp: line and
# paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def check_name(name: str) -> str:
    """The file name as it will be shown: NFC-normalised, without surrounding spaces. BadName
    for a path separator (/ or \\), a control or format character (anywhere, before stripping),
    an empty name, "." or "..", or more than NAME_MAX characters."""
    name = unicodedata.normalize("NFC", name)
    if "/" in name or "\\" in name or any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in name):
        raise BadName(SEPARATORS_MESSAGE)
    name = name.strip()
    if not name:
        raise BadName(EMPTY_NAME_MESSAGE)
    if name in (".", ".."):
        raise BadName(DOTS_MESSAGE)
    if len(name) > NAME_MAX:
        raise BadName(LONG_NAME_MESSAGE)
    return name


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Kind:
    """An accepted type: `code` (what is stored), the `media_type` it is served with, the pt-BR
    `label` pages show, and whether the browser may show it `inline` (in a sandbox) instead of
    downloading it."""
    code: str
    media_type: str
    label: str
    inline: bool


PDF = Kind("pdf", "application/pdf", N_("PDF"), True)
XML = Kind("xml", "application/xml", N_("XML"), False)
XLSX = Kind("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            N_("Planilha do Excel (XLSX)"), False)
XLS = Kind("xls", "application/vnd.ms-excel", N_("Planilha do Excel (XLS)"), False)
DOCX = Kind("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            N_("Documento do Word (DOCX)"), False)
CSV = Kind("csv", "text/csv", N_("Planilha CSV"), False)
TXT = Kind("txt", "text/plain", N_("Texto (TXT)"), False)
ZIP = Kind("zip", "application/zip", N_("Arquivo compactado (ZIP)"), False)
PNG = Kind("png", "image/png", N_("Imagem PNG"), True)
JPEG = Kind("jpeg", "image/jpeg", N_("Imagem JPEG"), True)

KINDS: dict[str, Kind] = {k.code: k for k in (PDF, XML, XLSX, XLS, DOCX, CSV, TXT, ZIP, PNG, JPEG)}
MACROS_MESSAGE = N_("Arquivos do Office com macros não são aceitos. Salve sem macros (XLSX, DOCX) e envie de novo.")
ACCEPTED_TYPES_MESSAGE = N_("Tipo de arquivo não aceito. Envie PDF, XML, XLSX, XLS, DOCX, CSV, TXT, ZIP, PNG ou JPEG.")

HEAD_SIZE = 8192  # what is read to tell the type (plus, for a ZIP or an XLS, its directory)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_UTF8_BOM = b"\xef\xbb\xbf"
# Markup a browser would run or render, looked for anywhere in the head of what looks like text.
_MARKUP = re.compile(rb"<(?:html|script|!doctype|svg|iframe|object|embed|body)\b|<\?php", re.IGNORECASE)


def sniff(content: bytes | IO[bytes], name: str) -> Kind:
    """The type of a file from its CONTENT, not its extension: a .pdf whose content is a PNG is
    accepted as PNG (content wins; the name is kept as the user gave it), and an HTML page named
    .txt or .pdf is refused.

    `content` is the whole file: bytes, or a seekable binary file (read from its start, its
    position restored). Only the first HEAD_SIZE bytes are read, plus, for a ZIP, its central
    directory (to tell XLSX and DOCX from a plain ZIP) and, for an OLE2 compound file, its
    directory (to tell an XLS from a Word .doc). `name` only tells CSV from TXT.

    Raises EmptyFile for zero bytes, ForbiddenType for anything else than the accepted types
    (HTML, SVG, scripts, executables, Office files with macros…), CorruptArchive for a ZIP whose
    directory cannot be read.
    """
    fileobj = io.BytesIO(content) if isinstance(content, bytes | bytearray) else content
    position = fileobj.tell()
    try:
        fileobj.seek(0)
        head = fileobj.read(HEAD_SIZE)
        return _sniff(fileobj, head, name)
    finally:
        fileobj.seek(position)


def _sniff(fileobj: IO[bytes], head: bytes, name: str) -> Kind:
    if not head:
        raise EmptyFile()
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(_PNG_MAGIC):
        return PNG
    if head.startswith(_JPEG_MAGIC):
        return JPEG
    if head.startswith(_ZIP_MAGICS):
        return _zip_kind(fileobj)
    if head.startswith(_OLE_MAGIC):
        return _ole_kind(fileobj, head)
    # Text: UTF-8 or Latin-1 (which decodes any byte), so what tells it from binary is NUL. An
    # executable (MZ, ELF…) or an image of another format holds NULs in its first kilobytes.
    if b"\x00" in head or head.startswith(b"#!") or _MARKUP.search(head):
        raise ForbiddenType(ACCEPTED_TYPES_MESSAGE)
    start = head[len(_UTF8_BOM):] if head.startswith(_UTF8_BOM) else head
    if start.lstrip().startswith(b"<"):  # "<?xml" or straight to the root element
        return XML
    return CSV if name.lower().endswith(".csv") else TXT


def _zip_kind(fileobj: IO[bytes]) -> Kind:
    """XLSX or DOCX when the archive is an Office Open XML package ("[Content_Types].xml" and the
    "xl/" or "word/" part), else a plain ZIP. Refused: macro-enabled Office files (a vbaProject.bin
    part, whatever the extension says), Java archives and Android packages."""
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CorruptArchive() from None
    if any(n.rsplit("/", 1)[-1].lower() == "vbaproject.bin" for n in names):
        raise ForbiddenType(MACROS_MESSAGE)
    if "META-INF/MANIFEST.MF" in names or "AndroidManifest.xml" in names:
        raise ForbiddenType(ACCEPTED_TYPES_MESSAGE)
    if "[Content_Types].xml" in names:
        if any(n.startswith("xl/") for n in names):
            return XLSX
        if any(n.startswith("word/") for n in names):
            return DOCX
    return ZIP


_OLE_END_OF_CHAIN = 0xFFFFFFFE
_OLE_MAX_DIRECTORY_SECTORS = 64  # a workbook's directory holds a handful of entries; stop there


def _ole_kind(fileobj: IO[bytes], head: bytes) -> Kind:
    """XLS when the compound file's directory holds a "Workbook" (BIFF8) or "Book" (BIFF5) stream;
    refused when it is something else (a Word .doc, an Outlook .msg, an .msi installer…) or holds
    VBA macros ("_VBA_PROJECT_CUR"). Reads the header's DIFAT (the first 109 FAT sectors, 6.8 MB
    of a file with 512-byte sectors, more than any directory needs) and follows the directory's
    sector chain."""
    names = set(_ole_directory_names(fileobj, head))
    if not names & {"Workbook", "Book"}:
        raise ForbiddenType(ACCEPTED_TYPES_MESSAGE)
    if "_VBA_PROJECT_CUR" in names:
        raise ForbiddenType(MACROS_MESSAGE)
    return XLS


def _ole_directory_names(fileobj: IO[bytes], head: bytes) -> list[str]:
    if len(head) < 512:
        return []
    sector_shift, = struct.unpack_from("<H", head, 0x1E)
    if sector_shift not in (9, 12):
        return []
    size = 1 << sector_shift
    first_directory, = struct.unpack_from("<I", head, 0x30)
    fat_sectors = [s for s in struct.unpack_from("<109I", head, 0x4C) if s < 0xFFFFFFFA]

    def sector(number: int) -> bytes:
        fileobj.seek((number + 1) * size)
        return fileobj.read(size)

    fat_cache: dict[int, tuple[int, ...]] = {}

    def next_sector(number: int) -> int:
        per_sector = size // 4
        index, offset = divmod(number, per_sector)
        if index >= len(fat_sectors):
            return _OLE_END_OF_CHAIN
        if index not in fat_cache:
            data = sector(fat_sectors[index])
            fat_cache[index] = struct.unpack(f"<{len(data) // 4}I", data[:len(data) // 4 * 4])
        entries = fat_cache[index]
        return entries[offset] if offset < len(entries) else _OLE_END_OF_CHAIN

    names: list[str] = []
    current, seen = first_directory, set[int]()
    while current < 0xFFFFFFFA and current not in seen and len(seen) < _OLE_MAX_DIRECTORY_SECTORS:
        seen.add(current)
        data = sector(current)
        for entry in range(0, len(data) - 127, 128):
            length, = struct.unpack_from("<H", data, entry + 0x40)
            if 2 <= length <= 64 and data[entry + 0x42] in (1, 2, 5):  # storage, stream, root
                names.append(data[entry:entry + length - 2].decode("utf-16-le", "replace"))
        current = next_sector(current)
    return names


# --------------------------------------------------------------------------- PDF


def open_pdf(fileobj: IO[bytes]) -> PdfReader:
    """A pypdf reader of a PDF whose page count can be read (decrypted with the empty password
    when it is encrypted only against editing, as some banks' and the Receita's PDFs are);
    CorruptPdf otherwise (truncated, not a PDF, protected by a password, no page).

    pypdf is imported here, not with the module: only an upload of a PDF and Distribuir
    automaticamente read one, and a web worker that never does keeps its ~10 MB out."""
    from pypdf import PdfReader
    try:
        fileobj.seek(0)
        reader = PdfReader(fileobj)
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptPdf()
        if len(reader.pages) < 1:
            raise CorruptPdf()
    except RefusedFile:
        raise
    except Exception:  # pypdf raises many kinds (PdfReadError, ValueError, KeyError, RecursionError…)
        raise CorruptPdf() from None
    return reader


def check_pdf(fileobj: IO[bytes]) -> None:
    """CorruptPdf when pypdf cannot open the PDF or read its page count (see open_pdf)."""
    position = fileobj.tell()
    try:
        open_pdf(fileobj)
    finally:
        fileobj.seek(position)

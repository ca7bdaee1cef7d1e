"""What the upload page accepts: a file's name as shown, its type told by its content (never by its
extension: an HTML page named .txt or .pdf is refused) and a PDF that can be read."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from services.documents import inspection
from services.documents.inspection import BadName, CorruptArchive, CorruptPdf, EmptyFile, ForbiddenType, RefusedFile
from testsupport import guias, samples

ACCEPTED = "Tipo de arquivo não aceito. Envie PDF, XML, XLSX, XLS, DOCX, CSV, TXT, ZIP, PNG ou JPEG."
MACROS = "Arquivos do Office com macros não são aceitos. Salve sem macros (XLSX, DOCX) e envie de novo."
SEPARATORS = "O nome do arquivo não pode conter “/”, “\\” nem caracteres de controle (invisíveis)."
NFE = '<?xml version="1.0" encoding="UTF-8"?><nfeProc versao="4.00"><NFe/></nfeProc>'


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("given, shown", [
    ("Guia DAS outubro.pdf", "Guia DAS outubro.pdf"),
    ("  Balanço 2026.xlsx  ", "Balanço 2026.xlsx"),
    ("Relato\u0301rio.pdf", "Relatório.pdf"),  # decomposed (macOS) to composed
    (".bashrc", ".bashrc"),
    ("a" * 196 + ".pdf", "a" * 196 + ".pdf"),
])
def test_a_name_is_shown_normalised_and_trimmed(given, shown):
    assert inspection.check_name(given) == shown


@pytest.mark.parametrize("name", [
    "../guia.pdf", "pasta/guia.pdf", "C:\\Users\\guia.pdf", "guia\x00.pdf", "guia\n.pdf", "guia\x7f.pdf",
    "guia\x85.pdf", "fdp\u202eexe.pdf", "guia\u200b.pdf", "guia\u2028.pdf",
])
def test_separators_and_invisible_characters_are_refused(name):
    with pytest.raises(BadName) as refused:
        inspection.check_name(name)
    assert refused.value.message == SEPARATORS


@pytest.mark.parametrize("name, message", [
    ("", "Informe o nome do arquivo."),
    ("   ", "Informe o nome do arquivo."),
    (".", "O nome do arquivo não pode ser “.” nem “..”."),
    ("..", "O nome do arquivo não pode ser “.” nem “..”."),
    (" .. ", "O nome do arquivo não pode ser “.” nem “..”."),
    ("a" * 197 + ".pdf", "O nome do arquivo pode ter no máximo 200 caracteres."),
])
def test_empty_dot_and_long_names_are_refused(name, message):
    with pytest.raises(BadName) as refused:
        inspection.check_name(name)
    assert refused.value.message == message and isinstance(refused.value, RefusedFile)


# --------------------------------------------------------------------------- accepted types

@pytest.mark.parametrize("content, name, code, media_type, inline", [
    (guias.das_guia(), "guia.pdf", "pdf", "application/pdf", True),
    (NFE.encode(), "nota.xml", "xml", "application/xml", False),
    (b"\xef\xbb\xbf\r\n  " + NFE.encode(), "nota.xml", "xml", "application/xml", False),  # BOM, blank line
    (b"<nfeProc><NFe/></nfeProc>", "nota.xml", "xml", "application/xml", False),
    (samples.xlsx_bytes(), "balancete.xlsx", "xlsx",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", False),
    (samples.xls_bytes(), "balancete.xls", "xls", "application/vnd.ms-excel", False),
    (samples.docx_bytes(), "contrato.docx", "docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document", False),
    ("Empresa;Valor\nPadaria Pão Quente;1.234,56\n".encode(), "folha.csv", "csv", "text/csv", False),
    ("Empresa;Valor\nPadaria Pão Quente;1.234,56\n".encode("latin-1"), "FOLHA.CSV", "csv", "text/csv", False),
    ("Relatório de pendências\n".encode(), "leia-me.txt", "txt", "text/plain", False),
    ("Relatório de pendências\n".encode("latin-1"), "leia-me", "txt", "text/plain", False),
    (samples.zip_bytes({"notas/nota1.xml": NFE, "notas/nota2.xml": NFE}), "notas.zip", "zip", "application/zip",
     False),
    (samples.png_bytes(), "comprovante.png", "png", "image/png", True),
    (samples.jpeg_bytes(), "comprovante.jpg", "jpeg", "image/jpeg", True),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_each_accepted_type_is_told_by_its_content(content, name, code, media_type, inline):
    kind = inspection.sniff(content, name)
    assert (kind.code, kind.media_type, kind.inline) == (code, media_type, inline)
    assert kind == inspection.KINDS[code] and kind.label


@pytest.mark.parametrize("content, name, code", [
    (samples.png_bytes(), "guia.pdf", "png"),
    (guias.das_guia(), "guia.png", "pdf"),
    (samples.xlsx_bytes(), "planilha.zip", "xlsx"),
    (samples.docx_bytes(), "contrato.txt", "docx"),
    (samples.zip_bytes({"a.txt": "a"}), "planilha.xlsx", "zip"),
    (b"a;b\n1;2\n", "dados.txt", "txt"),
    (NFE.encode(), "nota.csv", "xml"),
])
def test_the_content_wins_over_the_extension(content, name, code):
    assert inspection.sniff(content, name).code == code


def test_a_file_object_is_read_from_its_start_and_left_where_it_was():
    upload = io.BytesIO(samples.docx_bytes())
    upload.seek(0, io.SEEK_END)
    end = upload.tell()
    assert inspection.sniff(upload, "contrato.docx").code == "docx"
    assert upload.tell() == end


# --------------------------------------------------------------------------- refused types

PE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(44) + b"\x80\x00\x00\x00"


@pytest.mark.parametrize("content, name", [
    (b"<!DOCTYPE html><html><body><p>Guia</p></body></html>", "guia.txt"),
    (b"<!doctype html><title>Guia</title>", "guia.pdf"),
    (b"\n\n<HTML><BODY onload=alert(1)>", "guia.pdf"),
    (b"Relatorio\n<script>fetch('/e/x')</script>", "relatorio.txt"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.xml"),
    (b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><lol>&lol;</lol>', "nota.xml"),
    (PE_HEADER + b"This program cannot be run in DOS mode.", "guia.pdf"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(8), "guia.txt"),
    (b"#!/bin/sh\nrm -rf ~\n", "leia-me.txt"),
    (samples.word_doc_bytes(), "contrato.xls"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "foto.png"),
    ("Relatório".encode("utf-16"), "relatorio.txt"),
], ids=["html-as-txt", "html-as-pdf", "html-uppercase", "script-in-text", "svg", "xml-doctype", "exe-as-pdf",
        "elf", "shell-script", "word-doc-as-xls", "gif", "utf-16-text"])
def test_markup_executables_and_other_types_are_refused(content, name):
    with pytest.raises(ForbiddenType) as refused:
        inspection.sniff(content, name)
    assert refused.value.message == ACCEPTED


@pytest.mark.parametrize("content, name", [
    (samples.xls_bytes(macros=True), "planilha.xls"),
    (samples.zip_bytes({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>",
                        "xl/vbaProject.bin": b"\xd0\xcf\x11\xe0"}), "planilha.xlsx"),
    (samples.zip_bytes({"[Content_Types].xml": "<Types/>", "word/document.xml": "<document/>",
                        "word/vbaProject.bin": b"\xd0\xcf\x11\xe0"}), "contrato.docx"),
])
def test_office_files_with_macros_are_refused(content, name):
    with pytest.raises(ForbiddenType) as refused:
        inspection.sniff(content, name)
    assert refused.value.message == MACROS


def test_an_empty_file_is_refused():
    with pytest.raises(EmptyFile) as refused:
        inspection.sniff(b"", "guia.pdf")
    assert refused.value.message == "O arquivo está vazio."


def test_a_truncated_zip_is_refused_as_corrupt():
    with pytest.raises(CorruptArchive) as refused:
        inspection.sniff(samples.xlsx_bytes()[:600], "balancete.xlsx")
    assert refused.value.message == "O arquivo compactado (ZIP) está corrompido ou não pôde ser lido."


# --------------------------------------------------------------------------- PDFs

def _encrypted(user_password: str) -> io.BytesIO:
    writer = PdfWriter(clone_from=io.BytesIO(guias.das_guia()))
    writer.encrypt(user_password=user_password, owner_password="dono", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out


def test_a_readable_pdf_passes_and_is_left_where_it_was():
    upload = io.BytesIO(guias.das_guia())
    upload.seek(7)
    inspection.check_pdf(upload)
    assert upload.tell() == 7
    inspection.check_pdf(io.BytesIO(guias.image_only_pdf()))
    inspection.check_pdf(_encrypted(user_password=""))  # protected against editing only: opens for anyone


@pytest.mark.parametrize("content", [
    guias.das_guia()[:600],
    guias.das_guia()[:60],
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\nnot really a pdf",
    samples.png_bytes(),
    _encrypted(user_password="segredo").getvalue(),
], ids=["truncated-half", "truncated-header", "header-only", "png", "password"])
def test_an_unreadable_pdf_is_refused(content):
    with pytest.raises(CorruptPdf) as refused:
        inspection.check_pdf(io.BytesIO(content))
    assert refused.value.message == "O PDF está corrompido ou não pôde ser lido."

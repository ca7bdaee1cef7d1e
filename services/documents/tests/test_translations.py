"""The documents service in English (footer › Idioma › English): every pt-BR msgid of its code and
templates has an English translation that keeps its placeholders, and the pages come out in English."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from services.documents.services import Metadata
from services.documents.views.client import today
from testsupport.guias import das_guia, make_cnpj

from .client_support import rows, section
from .conftest import login, publish

SERVICE = Path(__file__).parents[1]
PO = SERVICE / "translations" / "en" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _extracted() -> dict[str, str | None]:
    """{msgid: msgid_plural or None} of what `pybabel extract -F babel.cfg -k _l -k N_` finds."""
    with (SERVICE / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    found: dict[str, str | None] = {}
    for _path, _line, message, _comments, _context in extract_from_dir(
            str(SERVICE), method_map, options_map, keywords=keywords):
        if isinstance(message, tuple):
            found[message[0]] = message[1]
        else:
            found.setdefault(message, None)
    return found


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def test_every_msgid_has_an_english_translation_with_its_placeholders():
    with PO.open("rb") as f:
        catalog = read_po(f)
    extracted = _extracted()
    assert len(extracted) > 200  # the extraction found the templates and the code, not nothing
    for msgid, plural in extracted.items():
        message = catalog.get(msgid)
        assert message is not None, f"not in the catalogue (re-extract and update): {msgid!r}"
        assert not message.fuzzy, msgid
        if plural is None:
            assert isinstance(message.string, str) and message.string.strip(), f"untranslated: {msgid!r}"
            pairs = [(msgid, message.string)]
        else:
            assert message.pluralizable and message.id[1] == plural, msgid
            assert len(message.string) == 2 and all(s.strip() for s in message.string), f"untranslated: {msgid!r}"
            pairs = [(msgid, message.string[0]), (plural, message.string[1])]
        for source, english in pairs:
            assert _placeholders(english) == _placeholders(source), (source, english)
            assert "%" not in PLACEHOLDER.sub("", english), english  # a stray % would break the formatting
    assert list(catalog.check()) == []  # Babel's own checks (python-format, plural forms)


def test_a_client_s_documents_home_in_english(config, docworld, bus, browser_client):
    w = docworld
    due = today() - timedelta(days=3)
    publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
            data=das_guia(make_cnpj(201), "10/2026", due.strftime("%d/%m/%Y"), "1.234,56"), name="DAS 10-2026.pdf",
            by=w.bruno, meta=Metadata(competencia="10/2026", guia_tipo="DAS", vencimento=due))
    login(browser_client, config, w.carlos)
    browser_client.set_cookie("balcao_locale", "en")
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/")
    assert page.status_code == 200
    text = page.text
    for heading in ('<h1>Documents</h1>', '<h2 id="pendencias">Pending</h2>',
                    '<h2 id="recentes">Recent documents</h2>', '<h2 id="pastas">Folders</h2>'):
        assert heading in text, heading
    assert "Tax slips you have not opened yet, by due date." in text and "Search documents" in text
    [pending] = rows(section(text, "pendencias"))
    assert f"Overdue was due on {due:%d/%m/%Y}" in pending and "DAS 10-2026.pdf" in pending
    for portuguese in ("Pendências", "Documentos recentes", "Pastas", "venceu em", "Vencida", "Buscar documentos"):
        assert portuguese not in text, portuguese


def test_a_form_error_defined_at_import_time_is_shown_in_english(config, docworld, browser_client):
    """The search's messages are N_ msgids of the schemas module: translated when shown."""
    login(browser_client, config, docworld.carlos)
    browser_client.set_cookie("balcao_locale", "en")
    page = browser_client.get(f"/documentos/e/{docworld.beta.slug}/busca?competencia=13-2026")
    assert "Enter the reference month as MM/YYYY (for example, 10/2026)." in page.text
    assert "Correct the filters marked below to search." in page.text
    assert "Informe a competência" not in page.text

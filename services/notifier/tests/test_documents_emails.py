"""The documents service's e-mails as the notifier renders them from a request: one e-mail listing
the documents published for a person (the list and the link arrive sealed: no file name crosses the
broker in the clear), and the Guias a vencer reminder."""
from __future__ import annotations

import uuid

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from services.common.events import make_envelope
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database
from services.notifier import consumers, models

LINK = "http://balcao.test/documentos/e/contabilidade-beta/"
LINES = ["DAS 10-2026.pdf — Oficina Motor Forte — vence em 20/11/2026",
         "Balancete <outubro> & notas.pdf — Oficina Motor Forte"]


def _request(keyring, template="documents_published", context=None, sealed=None) -> dict:
    key = f"documents-digest:{uuid.uuid4()}"
    return {"template": template, "recipient": "carlos@example.com", "locale": "pt_BR",
            "context": context or {"name": "Carlos Souza", "firm_name": "Contabilidade Beta", "count": "2"},
            "sealed": keyring.seal(sealed or {"link": LINK, "documents": "\n".join(LINES)}),
            "idempotency_key": key, "reference": key}


def _handle(config, request):
    envelope = make_envelope("notification.email_requested", request, correlation_id="docs")
    return handle_message(database("notifier", config), models.processed, "notifier",
                          consumers.HANDLERS["notification.email_requested"], envelope, config=config)


def _deliveries(config) -> list[models.Delivery]:
    with database("notifier", config).begin() as s:
        return list(s.scalars(select(models.Delivery)))


def test_the_new_documents_email_lists_each_document_and_links_to_the_firm(config):
    keyring = KeyRing(config.keys_dir)
    outcome, _ = _handle(config, _request(keyring))
    assert outcome == Outcome.HANDLED
    [delivery] = _deliveries(config)
    assert delivery.status == "sent" and delivery.recipient == "carlos@example.com"
    assert delivery.subject == "Contabilidade Beta publicou 2 novos documentos para você"
    text, html = delivery.text_body, delivery.html_body
    assert text.startswith("Olá, Carlos Souza!")
    assert [f"- {line}" for line in LINES] == [line for line in text.splitlines() if line.startswith("- ")]
    assert text.count(LINK) == 2 and f'href="{LINK}"' in html
    # a file name is text in the HTML, never markup
    assert "<li style=\"margin:0 0 6px;\">Balancete &lt;outubro&gt; &amp; notas.pdf — Oficina Motor Forte</li>" in html
    assert "<outubro>" not in html


def test_one_document_is_worded_in_the_singular():
    from services.notifier.rendering import render_email
    subject, text, _html = render_email("documents_published", {
        "name": "", "firm_name": "Contabilidade Beta", "count": "1", "link": LINK, "documents": LINES[0]})
    assert subject == "Contabilidade Beta publicou um novo documento para você"
    assert text.startswith("Olá!") and "publicou um novo documento para você" in text


def test_the_due_guias_reminder_says_when_they_fall_due(config):
    keyring = KeyRing(config.keys_dir)
    context = {"name": "Carlos Souza", "firm_name": "Contabilidade Beta", "count": "1", "days": "3"}
    outcome, _ = _handle(config, _request(keyring, template="documents_due", context=context,
                                          sealed={"link": LINK, "documents": LINES[0]}))
    assert outcome == Outcome.HANDLED
    [delivery] = _deliveries(config)
    assert delivery.subject == "Guia a vencer — Contabilidade Beta"
    assert "Esta guia vence nos próximos 3 dias e ainda não foi aberta" in delivery.text_body
    assert f"- {LINES[0]}" in delivery.text_body and LINK in delivery.text_body


def test_a_request_without_its_sealed_list_is_refused(config):
    keyring = KeyRing(config.keys_dir)
    with pytest.raises(ValidationError, match="documents"):
        _handle(config, _request(keyring, sealed={"link": LINK}))
    assert _deliveries(config) == []

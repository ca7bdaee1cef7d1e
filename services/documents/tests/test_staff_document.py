"""A document as staff see it: who published it, who opened it ("Visualizado por … em …" or "Não
visualizado"), Retirar (the client's next request is a 404), Excluir definitivamente for admins
(the bytes leave the store), and the comprovante de entrega (a PDF read back with pypdf)."""
from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

from pypdf import PdfReader
from sqlalchemy import select

from services.common.runtime import database
from services.documents import models
from services.documents.services import Metadata
from services.documents.vault import vault_from_config
from services.users import services as users_services
from services.users.tests.conftest import Person, make_cnpj, users_db
from testsupport import csrf_token
from testsupport.guias import das_guia

from .conftest import login, publish
from .staff_helpers import department_id, documents


def _publish_das(config, w):
    return publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
                   data=das_guia(make_cnpj(201), "10/2026", "20/11/2026", "1.234,56"), name="DAS 10-2026.pdf",
                   by=w.bruno, meta=Metadata(competencia="10/2026", guia_tipo="DAS"))


def _detail(w, doc_id) -> str:
    return f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/"


def test_the_detail_says_who_published_and_who_opened(config, docworld, browser_client):
    w = docworld
    doc_id = _publish_das(config, w)
    login(browser_client, config, w.bruno)
    page = browser_client.get(_detail(w, doc_id))
    assert page.status_code == 200
    assert "DAS 10-2026.pdf" in page.text and "Oficina Motor Forte" in page.text and "Fiscal" in page.text
    assert "Publicado por Bruno Reis em" in page.text and "Não visualizado" in page.text
    browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/abrir")  # staff's own opening: not a client's
    assert "Não visualizado" in browser_client.get(_detail(w, doc_id)).text
    login(browser_client, config, w.carlos)
    assert browser_client.get(_detail(w, doc_id)).status_code == 404  # the staff page is not a client's
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/abrir").status_code == 200
    login(browser_client, config, w.bruno)
    page = browser_client.get(_detail(w, doc_id))
    assert "Visualizado por Carlos Souza em" in page.text and "Não visualizado" not in page.text
    login(browser_client, config, w.ana)
    assert browser_client.get(_detail(w, doc_id)).status_code == 404


def test_retirar_then_the_client_s_next_request_is_404_and_an_admin_deletes_the_bytes(config, docworld, bus,
                                                                                     browser_client):
    w = docworld
    doc_id = _publish_das(config, w)
    [doc] = documents(config, id=doc_id)
    vault = vault_from_config(config)
    assert doc.object_key in {k for k, _ in vault.iter_objects()}
    open_url = f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/abrir"
    login(browser_client, config, w.carlos)
    assert browser_client.get(open_url).status_code == 200

    # a Colaborador who sees the document may retract it, not delete it for good
    gisele = Person(uuid.uuid4(), "gisele@beta.com.br", "Gisele Beta")
    with users_db(config).begin() as s:
        users_services.add_staff_member(s, firm=s.get(type(w.beta), w.beta.id), identity_id=gisele.identity_id,
                                        name=gisele.name, email=gisele.email, role="staff",
                                        company_ids=[w.beta_company.id],
                                        department_ids=[department_id(config, w.beta.id)])
    bus.pump()
    login(browser_client, config, gisele)
    confirm = browser_client.get(_detail(w, doc_id) + "retirar")
    assert confirm.status_code == 200 and "Retirar “DAS 10-2026.pdf”?" in confirm.text
    done = browser_client.post(_detail(w, doc_id) + "retirar", data={"csrf_token": csrf_token(confirm.text)})
    assert done.status_code == 303
    page = browser_client.get(_detail(w, doc_id))
    assert "Retirado por Gisele Beta em" in page.text and "Excluir definitivamente" not in page.text
    assert browser_client.get(_detail(w, doc_id) + "excluir").status_code == 404
    assert browser_client.post(_detail(w, doc_id) + "excluir",
                               data={"csrf_token": csrf_token(page.text)}).status_code == 404

    login(browser_client, config, w.carlos)
    assert browser_client.get(open_url).status_code == 404
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/baixar").status_code == 404

    login(browser_client, config, w.bruno)
    page = browser_client.get(_detail(w, doc_id))
    assert "Excluir definitivamente" in page.text
    confirm = browser_client.get(_detail(w, doc_id) + "excluir")
    assert confirm.status_code == 200
    assert browser_client.post(_detail(w, doc_id) + "excluir",
                               data={"csrf_token": csrf_token(confirm.text)}).status_code == 303
    [purged] = documents(config, id=doc_id)
    assert purged.status == "purged" and purged.object_key is None and purged.wrapped_key is None
    assert doc.object_key not in {k for k, _ in vault.iter_objects()}
    assert browser_client.get(open_url).status_code == 410
    with database("documents", config).begin() as s:
        actions = set(s.scalars(select(models.AuditEntry.action).where(models.AuditEntry.document_id == doc_id)))
    assert {"document.published", "document.retracted", "document.purged"} <= actions
    assert "Arquivo excluído definitivamente em" in browser_client.get(_detail(w, doc_id)).text


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_comprovante_de_entrega(config, docworld, browser_client):
    w = docworld
    doc_id = _publish_das(config, w)
    [doc] = documents(config, id=doc_id)
    login(browser_client, config, w.bruno)
    receipt_url = _detail(w, doc_id) + "comprovante"
    before = _pdf_text(browser_client.get(receipt_url).get_data())
    assert "Carlos Souza" in before and "E-mail: aguardando envio" in before and "Não visualizado" in before

    # the digest that told Carlos (the notifications' rows), then his opening
    with database("documents", config).begin() as s:
        carlos = s.scalar(select(models.Member).where(models.Member.identity_id == w.carlos.identity_id,
                                                      models.Member.firm_id == w.beta.id))
        digest = models.Digest(id=uuid.uuid4(), firm_id=w.beta.id, identity_id=w.carlos.identity_id,
                               kind="new_documents", requested_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
                               message_id="<digest-1@balcao.test>",
                               accepted_at=datetime(2026, 11, 29, 12, 1, tzinfo=UTC))
        s.add(digest)
        s.add(models.Notification(firm_id=w.beta.id, identity_id=w.carlos.identity_id, member_id=carlos.id,
                                  document_id=doc_id, kind="new_document", emailed=True, digest_id=digest.id,
                                  created_at=datetime(2026, 11, 29, 11, 58, tzinfo=UTC)))
    login(browser_client, config, w.carlos)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/abrir",
                              environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200
    login(browser_client, config, w.bruno)
    answer = browser_client.get(receipt_url)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/pdf"
    text = _pdf_text(answer.get_data())
    assert "Comprovante de entrega" in text and "Contabilidade Beta" in text
    assert "Documento: DAS 10-2026.pdf" in text and "Empresa: Oficina Motor Forte" in text
    assert "Publicado por Bruno Reis em" in text
    assert "E-mail: aceito pelo servidor SMTP em 29/11/2026 09:01" in text
    assert "Message-ID: <digest-1@balcao.test>" in text
    assert "Visualizado por Carlos Souza em" in text and "do IP 203.0.113.7" in text
    assert doc.sha256 in text.replace("\n", "")
    login(browser_client, config, w.carlos)
    assert browser_client.get(receipt_url).status_code == 404


def test_a_client_who_chose_no_e_mail_is_told_so_on_the_comprovante(config, docworld, browser_client):
    w = docworld
    doc_id = _publish_das(config, w)
    with database("documents", config).begin() as s:
        carlos = s.scalar(select(models.Member).where(models.Member.identity_id == w.carlos.identity_id,
                                                      models.Member.firm_id == w.beta.id))
        carlos.notifications = {**(carlos.notifications or {}), "new_documents": "portal"}
    login(browser_client, config, w.bruno)
    text = _pdf_text(browser_client.get(_detail(w, doc_id) + "comprovante").get_data())
    assert "E-mail: não enviado (notificação desativada)" in text

"""Distribuir automaticamente through the pages: a batch of guias is stored pending, read and
proposed; the review table shows what was read (never a guess); confirming publishes every
included row at once — or nothing, when a row has no company; a pending batch is its author's
and invisible to clients; a discarded batch leaves nothing."""
from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal

from services.documents.vault import vault_from_config
from services.users import services as users_services
from services.users.tests.conftest import Person, form_fields, make_cnpj, users_db
from testsupport import csrf_token
from testsupport.guias import darf_guia, das_guia, image_only_pdf
from testsupport.samples import png_bytes

from .conftest import login
from .staff_helpers import department_id, documents, folder_url, upload


def _with_mercado(config, w, bus) -> uuid.UUID:
    """Beta's second company (Mercado Bom Preço, CNPJ make_cnpj(202)); its id."""
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        mercado = users_services.create_company(s, firm=firm, name="Mercado Bom Preço Ltda", cnpj=make_cnpj(202))
        mercado_id = mercado.id
    bus.pump()
    return mercado_id


def _distribute(w):
    return f"/documentos/e/{w.beta.slug}/distribuir"


GUIAS = lambda: [  # noqa: E731
    ("das-oficina.pdf", das_guia(make_cnpj(201), "Outubro/2026", "20/11/2026", "1.234,56")),
    ("darf-mercado.pdf", darf_guia(make_cnpj(202), "10/2026", "25/11/2026", "987,65")),
    ("digitalizada.pdf", image_only_pdf()),
]


def test_a_batch_is_read_reviewed_and_published_at_once(config, docworld, bus, browser_client):
    w = docworld
    mercado = _with_mercado(config, w, bus)
    fiscal = department_id(config, w.beta.id)
    login(browser_client, config, w.bruno)
    sent = upload(browser_client, _distribute(w), _distribute(w), GUIAS())
    assert sent.status_code == 303, sent.text
    review_url = sent.headers["Location"]
    pending = documents(config, firm_id=w.beta.id)
    assert {d.status for d in pending} == {"pending"} and len({d.batch_id for d in pending}) == 1

    # the review table: what was read, the companies proposed, Fiscal by default
    review = browser_client.get(review_url)
    assert review.status_code == 200
    rows = {name: _row(review.text, name) for name, _ in GUIAS()}
    assert [_label(rows[n]) for n in ("das-oficina.pdf", "darf-mercado.pdf", "digitalizada.pdf")] == [
        "identificado", "identificado", "não identificado"]
    form = form_fields(review.text, "/distribuir/")
    by_name = {d.name: d.id for d in pending}
    das, darf, scan = (by_name[n] for n in ("das-oficina.pdf", "darf-mercado.pdf", "digitalizada.pdf"))
    assert form[f"empresa-{das}"] == str(w.beta_company.id) and form[f"empresa-{darf}"] == str(mercado)
    assert form[f"empresa-{scan}"] == ""  # never guessed
    assert {form[f"departamento-{i}"] for i in (das, darf, scan)} == {str(fiscal)}
    assert (form[f"competencia-{das}"], form[f"vencimento-{das}"], form[f"valor-{das}"], form[f"tipo-{das}"]) == (
        "10/2026", "20/11/2026", "1.234,56", "DAS")
    assert (form[f"competencia-{darf}"], form[f"vencimento-{darf}"], form[f"valor-{darf}"], form[f"tipo-{darf}"]) == (
        "10/2026", "25/11/2026", "987,65", "DARF")

    # the client sees none of it while it is pending
    login(browser_client, config, w.carlos)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{das}/abrir").status_code == 404
    assert "das-oficina.pdf" not in browser_client.get(folder_url(w, w.beta_company.id, fiscal)).text
    assert browser_client.get(review_url).status_code == 404

    # confirming with a row without company publishes nothing, and says why
    login(browser_client, config, w.bruno)
    form["csrf_token"] = csrf_token(browser_client.get(review_url).text)  # Bruno's new login
    refused = browser_client.post(review_url, data=form)
    assert refused.status_code == 422
    assert "Nada foi publicado" in refused.text and "Escolha a empresa." in refused.text
    assert {d.status for d in documents(config, firm_id=w.beta.id)} == {"pending"}

    # the scanned guia excluded, the DAS's valor corrected: both published at one moment
    del form[f"incluir-{scan}"]
    form[f"valor-{das}"] = "1.234,57"
    done = browser_client.post(review_url, data=form)
    assert done.status_code == 303
    assert "2 documentos publicados." in browser_client.get(done.headers["Location"]).text
    published = documents(config, firm_id=w.beta.id)
    assert sorted(d.name for d in published) == ["darf-mercado.pdf", "das-oficina.pdf"]
    assert {d.status for d in published} == {"published"} and len({d.published_at for d in published}) == 1
    das_doc = next(d for d in published if d.name == "das-oficina.pdf")
    assert (das_doc.company_id, das_doc.department_id, das_doc.guia_tipo, das_doc.vencimento, das_doc.valor) == (
        w.beta_company.id, fiscal, "DAS", date(2026, 11, 20), Decimal("1234.57"))
    assert browser_client.get(review_url).status_code == 404  # the batch is done
    login(browser_client, config, w.carlos)
    opened = browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{das}/abrir")
    assert opened.status_code == 200 and opened.get_data() == GUIAS()[0][1]
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{darf}/abrir").status_code == 404  # Mercado


def _label(row: str) -> str:
    match = re.search(r'<span class="status[^"]*">([^<]*)</span>', row)
    assert match, row
    return match.group(1)


def _row(html: str, name: str) -> str:
    match = re.search(r"<tr[^>]*>(?:(?!</tr>).)*?" + re.escape(name) + r".*?</tr>", html, re.S)
    assert match, name
    return match.group(0)


def test_one_request_per_file_fills_one_batch(config, docworld, bus, browser_client):
    w = docworld
    _with_mercado(config, w, bus)
    login(browser_client, config, w.bruno)
    batch_id = str(uuid.uuid4())
    answers = [upload(browser_client, _distribute(w), _distribute(w), [guia], xhr=True, lote=batch_id)
               for guia in GUIAS()]
    assert [a.json["status"] for a in answers] == ["received"] * 3
    assert [a.json["message"] for a in answers] == ["identificado", "identificado", "não identificado"]
    assert {a.json["review_url"] for a in answers} == {f"/documentos/e/{w.beta.slug}/distribuir/{batch_id}"}
    refused = upload(browser_client, _distribute(w), _distribute(w), [("foto.png", png_bytes())], xhr=True,
                     lote=batch_id)
    assert refused.status_code == 422 and "envie este arquivo por Publicar documentos" in refused.json["message"]
    assert len(documents(config, batch_id=uuid.UUID(batch_id))) == 3


def test_a_pending_batch_is_its_author_s_and_a_discarded_one_leaves_nothing(config, docworld, bus, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    gisele = Person(uuid.uuid4(), "gisele@beta.com.br", "Gisele Beta")
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        users_services.add_staff_member(s, firm=firm, identity_id=gisele.identity_id, name=gisele.name,
                                        email=gisele.email, role="staff", company_ids=[w.beta_company.id],
                                        department_ids=[fiscal])
    bus.pump()
    vault = vault_from_config(config)
    login(browser_client, config, w.bruno)
    review_url = upload(browser_client, _distribute(w), _distribute(w), GUIAS()[:1]).headers["Location"]
    [doc] = documents(config, firm_id=w.beta.id)
    assert doc.object_key in {k for k, _ in vault.iter_objects()}
    login(browser_client, config, gisele)  # a Colaborador who sees the company: not her batch
    assert browser_client.get(review_url).status_code == 404
    assert review_url not in browser_client.get(_distribute(w)).text
    token = csrf_token(browser_client.get(_distribute(w)).text)
    assert browser_client.post(review_url + "/descartar", data={"csrf_token": token}).status_code == 404
    assert browser_client.post(review_url, data={"csrf_token": token, f"incluir-{doc.id}": "1",
                                                 f"empresa-{doc.id}": str(w.beta_company.id),
                                                 f"departamento-{doc.id}": str(fiscal)}).status_code == 404
    # nor can she add files to it
    assert upload(browser_client, _distribute(w), _distribute(w), GUIAS()[:1],
                  lote=review_url.rsplit("/", 1)[1]).status_code == 404
    login(browser_client, config, w.bruno)
    page = browser_client.get(_distribute(w))
    assert review_url in page.text  # Bruno's own batch waits for him
    discarded = browser_client.post(review_url + "/descartar", data={"csrf_token": csrf_token(page.text)})
    assert discarded.status_code == 303
    assert documents(config, firm_id=w.beta.id) == []
    assert doc.object_key not in {k for k, _ in vault.iter_objects()}


def test_nothing_but_refusals_keeps_the_page_with_the_messages(config, docworld, browser_client):
    w = docworld
    login(browser_client, config, w.bruno)
    answer = upload(browser_client, _distribute(w), _distribute(w),
                    [("vazio.pdf", b""), ("quebrado.pdf", b"%PDF-1.4\nnada aqui")])
    assert answer.status_code == 422
    assert "O arquivo está vazio." in answer.text and "O PDF está corrompido ou não pôde ser lido." in answer.text
    assert documents(config, firm_id=w.beta.id) == []
    login(browser_client, config, w.carlos)
    assert browser_client.get(_distribute(w)).status_code == 404


def test_storage_unreachable_receives_nothing(config, docworld, monkeypatch):
    import dataclasses

    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from testsupport import build_gateway

    from .test_staff_publish import _dead_endpoint
    w = docworld
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "teste")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "teste-segredo")
    down = dataclasses.replace(config, documents_s3_endpoint=_dead_endpoint(), documents_s3_bucket="nenhum")
    client = Client(build_gateway(down)[0], Response, use_cookies=True)
    login(client, down, w.bruno)
    answer = upload(client, _distribute(w), _distribute(w), GUIAS())
    assert answer.status_code == 503
    assert "Armazenamento indisponível: nada foi recebido. Tente de novo em alguns minutos." in answer.text
    assert documents(config, firm_id=w.beta.id) == []

"""Fault test: the object store (a real SeaweedFS S3 server) stops while staff publish a document,
on the distributed topology (gunicorn + workers, RabbitMQ, PostgreSQL, nginx). The page says the
storage is unavailable and nothing is published — no document row, nothing under a client's eyes;
/readyz of the documents service names the storage. Once the store is back, the same upload works
and the document is there, with its bytes."""
from __future__ import annotations

import io
import json
import re
import urllib.request

import pytest
from stdnum.br import cnpj as cnpj_mod

from tests.conftest import running_product
from testsupport import csrf_token, wait_until
from testsupport.guias import das_guia

pytestmark = pytest.mark.distributed

ADMIN = ("Bruno Lima", "bruno@beta-falha.example", "Bruno-Beta-Senha-37")


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


@pytest.fixture(scope="module")
def storage_product(mailbox, seaweed, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("storage-outage"), smtp_port=mailbox.port, tag="s3",
                         object_store=seaweed) as product:
        assert product.stack is not None, "the fault tests need RabbitMQ and PostgreSQL"
        yield product


def readyz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/documentos/readyz", timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_the_store_stopped_during_an_upload_publishes_nothing_and_the_upload_works_once_it_is_back(
        storage_product, seaweed):
    import requests
    product = storage_product
    slug = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("445556660001"), "--admin-name",
                       ADMIN[0], "--admin-email", ADMIN[1], "--admin-password", ADMIN[2]).strip().splitlines()[-1]
    company = product.cli("create-company", "--firm", slug, "--name", "Oficina Motor Forte Ltda", "--cnpj",
                          cnpj("345678900001")).strip().splitlines()[-1]
    http = requests.Session()
    page = http.get(product.url + "/auth/entrar", timeout=30)
    assert http.post(product.url + "/auth/entrar", timeout=30, data={
        "csrf_token": csrf_token(page.text), "email": ADMIN[1], "password": ADMIN[2]}).status_code == 200
    # the documents service learns of the firm from the users service's events
    home = product.url + f"/documentos/e/{slug}/"
    wait_until(lambda: "Oficina Motor Forte" in http.get(home, timeout=30).text, timeout=60,
               message="the documents service never showed the firm's company")
    fiscal = re.search(rf'href="/documentos/e/{slug}/empresas/{company}/([0-9a-f-]{{36}})/">Fiscal<', http.get(
        home, timeout=30).text).group(1)
    folder = f"{product.url}/documentos/e/{slug}/empresas/{company}/{fiscal}/"
    guia = das_guia(cnpj_mod.format(cnpj("345678900001")), "10/2026", "20/12/2026", "1.234,56")

    def publish():
        token = csrf_token(http.get(folder, timeout=30).text)
        return http.post(folder + "publicar", timeout=60, allow_redirects=False, data={"csrf_token": token},
                         files=[("arquivos", ("DAS outubro.pdf", io.BytesIO(guia), "application/pdf"))])

    def documents() -> int:
        return product.scalar("documents", "SELECT count(*) FROM documents")

    seaweed.stop()
    try:
        answer = publish()
        assert answer.status_code == 503, answer.status_code
        assert "Armazenamento indisponível: nada foi publicado." in answer.text
        assert documents() == 0
        status, detail = readyz(product.url)
        assert status == 503 and "storage" in detail, detail
    finally:
        seaweed.start()
    wait_until(lambda: readyz(product.url)[0] == 200, timeout=60, message="the documents service never got ready")
    answer = publish()
    assert answer.status_code in (200, 303), answer.status_code
    assert documents() == 1
    document_id = product.scalar("documents", "SELECT id FROM documents")
    assert "DAS outubro.pdf" in http.get(folder, timeout=30).text
    assert http.get(f"{product.url}/documentos/e/{slug}/documentos/{document_id}/baixar", timeout=30).content == guia

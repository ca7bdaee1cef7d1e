"""Guias a vencer não visualizadas: across the staff member's carteira, the published guias due from
today on that no client of their company has opened, by vencimento — in a constant number of SQL
statements whatever the number of guias."""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import event

from services.common.dates import BRASILIA
from services.common.runtime import database
from services.documents.services import Metadata
from services.users import services as users_services
from services.users.tests.conftest import Person, make_cnpj, users_db
from testsupport.guias import das_guia

from .conftest import login, publish
from .staff_helpers import department_id


def _guia(config, w, name, days, *, tipo="DAS", company_id=None, by=None):
    today = datetime.now(BRASILIA).date()
    return publish(config, firm_id=w.beta.id, company_id=company_id or w.beta_company.id, department_name="Fiscal",
                   data=das_guia(make_cnpj(201), "10/2026", "20/11/2026", f"{len(name)},00", name), name=name,
                   by=by or w.bruno, meta=Metadata(competencia="10/2026", guia_tipo=tipo,
                                                   vencimento=today + timedelta(days=days)))


@contextmanager
def statements(config):
    seen: list[str] = []
    engine = database("documents", config).engine

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_the_carteira_s_unopened_guias_by_vencimento(config, docworld, bus, browser_client):
    w = docworld
    url = f"/documentos/e/{w.beta.slug}/guias-a-vencer"
    later = _guia(config, w, "DAS vence em 10 dias.pdf", 10)
    sooner = _guia(config, w, "DARF vence em 3 dias.pdf", 3, tipo="DARF")
    today = _guia(config, w, "GPS vence hoje.pdf", 0, tipo="GPS")
    _guia(config, w, "DAS vencida ontem.pdf", -1)
    opened = _guia(config, w, "DAS aberta pelo cliente.pdf", 5)
    publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
            data=b"competencia;valor\n10/2026;1,00\n", name="planilha sem tipo.csv", by=w.bruno,
            meta=Metadata(vencimento=datetime.now(BRASILIA).date() + timedelta(days=4)))
    login(browser_client, config, w.carlos)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{opened}/abrir").status_code == 200
    assert browser_client.get(url).status_code == 404  # a client: no such page
    login(browser_client, config, w.bruno)
    browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{later}/abrir")  # staff opening: still unseen

    page = browser_client.get(url)
    assert page.status_code == 200
    names = re.findall(r'/documentos/([0-9a-f-]{36})/">([^<]+)</a>', page.text)
    assert names == [(str(today), "GPS vence hoje.pdf"), (str(sooner), "DARF vence em 3 dias.pdf"),
                     (str(later), "DAS vence em 10 dias.pdf")]

    # a Colaborador whose carteira is another company sees none of these
    irene = Person(uuid.uuid4(), "irene@beta.com.br", "Irene Beta")
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        mercado = users_services.create_company(s, firm=firm, name="Mercado Bom Preço Ltda", cnpj=make_cnpj(202))
        mercado_id = mercado.id
        users_services.add_staff_member(s, firm=firm, identity_id=irene.identity_id, name=irene.name,
                                        email=irene.email, role="staff", company_ids=[mercado.id],
                                        department_ids=[department_id(config, w.beta.id)])
    bus.pump()
    mercado_guia = _guia(config, w, "DAS do mercado.pdf", 7, company_id=mercado_id)
    login(browser_client, config, irene)
    seen = re.findall(r'/documentos/([0-9a-f-]{36})/">', browser_client.get(url).text)
    assert seen == [str(mercado_guia)]

    # more guias, the same statements (one query for the list)
    login(browser_client, config, w.bruno)
    with statements(config) as before:
        browser_client.get(url)
    for n in range(6):
        _guia(config, w, f"DAS extra {n}.pdf", 20 + n)
    with statements(config) as after:
        more = browser_client.get(url)
    assert more.text.count("DAS extra") == 6
    assert len(after) == len(before), (before, after)

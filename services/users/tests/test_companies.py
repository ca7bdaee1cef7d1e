"""Configurações › Empresas: a firm's client companies — razão social, nome fantasia, a CNPJ
(numeric or alphanumeric) or a CPF, a código interno —, their list, Nova empresa, Editar,
Desativar / Reativar, the import from a file, their events and their audit entries; and what a
deactivated company means for the client users' portal."""
from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import func, select, text
from stdnum.br import cnpj as stdnum_cnpj

from services.common import events
from services.users import consumers, models, services
from services.users.tests.conftest import (
    Person,
    login,
    main_html,
    make_cnpj,
    make_cpf,
    outbox_events,
    text_of,
    users_db,
)
from testsupport import count_queries, csrf_token, csv_bytes

ALNUM = "12ABC34501DE35"             # an alphanumeric CNPJ (IN RFB 2.229/2024), stored form
ALNUM_TYPED = "12.abc.345/01de-35"   # as someone may type it
LIST = "/e/{slug}/configuracoes/empresas"
COMPANY_EVENTS = ("company.created", "company.changed", "company.deactivated", "company.reactivated")


def _url(firm, suffix=""):
    return LIST.format(slug=firm.slug) + suffix


def _page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def _post(client, url, data, *, page_url=None):
    html = _page(client, page_url or url)
    return client.post(url, data={"csrf_token": csrf_token(html), **data})


def _company(config, company_id) -> models.Company:
    with users_db(config).begin() as s:
        return s.get(models.Company, company_id)


def _create(config, firm, **kw) -> models.Company:
    with users_db(config).begin() as s:
        return services.create_company(s, firm=s.get(models.Firm, firm.id), **kw)


def _events(config, world=None) -> list[dict]:
    """The company events recorded (after the world's own three company.created)."""
    found = [e for e in outbox_events(config) if e["type"].startswith("company.")]
    return found[3:] if world is not None else found


@pytest.fixture
def gisele(config, world) -> Person:
    """A Colaborador at Alfa (not an admin) whose carteira holds Alfa's company."""
    person = Person(uuid.uuid4(), "gisele@alfa.com.br", "Gisele Alves")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=person.identity_id,
                                  name=person.name, email=person.email, role="staff",
                                  company_ids=[world.alfa_company.id])
    return person


# --------------------------------------------------------------------------- the service functions


def test_a_company_has_a_cnpj_numeric_or_alphanumeric_or_a_cpf(config, world):
    assert stdnum_cnpj.is_valid(ALNUM)
    numeric = _create(config, world.alfa, name="  Loja   Numérica Ltda ", cnpj=stdnum_cnpj.format(make_cnpj(301)))
    assert (numeric.name, numeric.document_kind, numeric.cnpj, numeric.active) == \
           ("Loja Numérica Ltda", "cnpj", make_cnpj(301), True)
    alnum = _create(config, world.alfa, name="Loja Alfanumérica Ltda", document=ALNUM_TYPED, trade_name="Loja A",
                    code=" A-17 ")
    assert (alnum.document_kind, alnum.cnpj, alnum.trade_name, alnum.code) == ("cnpj", ALNUM, "Loja A", "A-17")
    person = _create(config, world.alfa, name="João Produtor Rural", document="529.982.247-25")
    assert (person.document_kind, person.cnpj, person.cpf, person.document) == \
           ("cpf", None, "52998224725", "52998224725")
    with users_db(config).begin() as s:  # a person's CPF is encrypted at rest, found by its keyed hash
        raw = s.execute(text("SELECT cpf, cpf_hash FROM companies WHERE id = :id"),
                        {"id": person.id.hex if s.bind.dialect.name == "sqlite" else person.id}).one()
    assert raw.cpf.startswith("v1:") and "52998224725" not in raw.cpf and len(raw.cpf_hash) == 64


@pytest.mark.parametrize("kw,field,message", [
    ({"name": "", "document": make_cnpj(1)}, "name", "Informe a razão social."),
    ({"name": "X", "document": ""}, "document", "Informe o CNPJ ou o CPF."),
    ({"name": "X", "document": "12.345.678/0001-00"}, "document", "CNPJ inválido."),
    ({"name": "X", "document": "12.ABC.345/01DE-99"}, "document", "CNPJ inválido."),
    ({"name": "X", "document": "123.456.789-00"}, "document", "CPF inválido."),
    ({"name": "X", "document": "111.111.111-11"}, "document", "CPF inválido."),
    ({"name": "X", "document": "12345"}, "document", "Informe um CNPJ (14 caracteres) ou um CPF (11 dígitos)."),
    ({"name": "X", "cnpj": "123"}, "document", "CNPJ inválido."),
    ({"name": "X", "document": make_cnpj(1), "code": "x" * 31}, "code", "Código muito longo (até 30 caracteres)."),
])
def test_bad_input_is_refused_with_a_clear_message(config, world, kw, field, message):
    with pytest.raises(services.ClientUserError) as refused:
        _create(config, world.alfa, **kw)
    assert (refused.value.field, refused.value.message) == (field, message)
    assert _events(config, world) == []


def test_the_document_is_unique_in_the_firm_whatever_its_formatting(config, world):
    _create(config, world.alfa, name="Primeira", document=ALNUM)
    _create(config, world.alfa, name="Pessoa", document=make_cpf(77))
    cases = [(ALNUM_TYPED, "Já existe uma empresa com este CNPJ neste escritório."),
             (ALNUM.lower(), "Já existe uma empresa com este CNPJ neste escritório."),
             (stdnum_cnpj.format(world.alfa_company.cnpj), "Já existe uma empresa com este CNPJ neste escritório."),
             (make_cpf(77)[:3] + "." + make_cpf(77)[3:6] + "." + make_cpf(77)[6:9] + "-" + make_cpf(77)[9:],
              "Já existe uma empresa com este CPF neste escritório.")]
    for document, message in cases:
        with pytest.raises(services.ClientUserError) as refused:
            _create(config, world.alfa, name="Outra", document=document)
        assert refused.value.message == message
    # another firm may have the same companies
    assert _create(config, world.beta, name="Primeira", document=ALNUM).cnpj == ALNUM
    assert _create(config, world.beta, name="Pessoa", document=make_cpf(77)).document_kind == "cpf"


def test_an_inactive_company_keeps_its_document_and_says_so(config, world):
    with users_db(config).begin() as s:
        services.deactivate_company(s, firm=world.alfa, company=s.get(models.Company, world.alfa_company.id))
    with pytest.raises(services.ClientUserError) as refused:
        _create(config, world.alfa, name="De novo", document=world.alfa_company.cnpj)
    assert refused.value.message == ("Já existe uma empresa com este CNPJ neste escritório. "
                                     "Ela está inativa: reative-a na lista de empresas.")


# --------------------------------------------------------------------------- events (contract) and audit


def _consume(envelope: dict) -> dict:
    """What a consumer of the catalogue reads (the documents service will)."""
    _envelope, payload = events.parse_envelope(json.loads(json.dumps(envelope)))
    return payload


def test_each_change_records_exactly_one_event_that_its_schema_accepts(config, world):
    ana = services.Actor(world.ana.identity_id, world.ana.name, world.ana.email)
    company = _create(config, world.alfa, name="Padaria Nova Ltda", document=ALNUM_TYPED, trade_name="Pão Novo",
                      actor=ana)
    assert [e["type"] for e in _events(config, world)] == ["company.created"]
    with users_db(config).begin() as s:
        target = s.get(models.Company, company.id)
        assert services.update_company(s, firm=world.alfa, company=target, name="Padaria Nova Ltda",
                                       document=ALNUM, trade_name="Pão Novo", actor=ana) == []  # nothing changed
    assert len(_events(config, world)) == 1
    steps = [
        lambda s, c: services.update_company(s, firm=world.alfa, company=c, name="Padaria Nova ME",
                                             document=ALNUM, trade_name=None, code="77", actor=ana),
        lambda s, c: services.deactivate_company(s, firm=world.alfa, company=c, actor=ana),
        lambda s, c: services.reactivate_company(s, firm=world.alfa, company=c, actor=ana),
    ]
    for step in steps:
        with users_db(config).begin() as s:
            step(s, s.get(models.Company, company.id))
    recorded = _events(config, world)
    assert [e["type"] for e in recorded] == list(COMPANY_EVENTS)
    payloads = [_consume(e) for e in recorded]
    assert [p["active"] for p in payloads] == [True, True, False, True]
    assert payloads[1] == {"firm_id": world.alfa.id, "company_id": company.id, "legal_name": "Padaria Nova ME",
                           "trade_name": None, "document_kind": "cnpj", "document": ALNUM, "active": True}
    # a refused change records nothing
    with pytest.raises(services.ClientUserError), users_db(config).begin() as s:
        services.reactivate_company(s, firm=world.alfa, company=s.get(models.Company, company.id), actor=ana)
    assert len(_events(config, world)) == 4
    actions = [e.action for e in _audit(config, world.alfa) if e.action.startswith("company.")]
    assert actions == ["company.created", "company.edited", "company.deactivated", "company.reactivated"]
    edited = next(e for e in _audit(config, world.alfa) if e.action == "company.edited")
    assert edited.details == {"fields": ["legal_name", "trade_name", "code"]} and edited.target_id == company.id
    assert edited.actor_email == world.ana.email and edited.target_name == "Padaria Nova ME"


def test_a_person_company_s_cpf_never_travels_whole(config, world):
    cpf = make_cpf(4321)
    company = _create(config, world.alfa, name="Maria Autônoma", document=cpf)
    with users_db(config).begin() as s:
        services.update_company(s, firm=world.alfa, company=s.get(models.Company, company.id), name="Maria da Silva",
                                document=cpf)
    for envelope in _events(config, world):
        assert cpf not in json.dumps(envelope) and cpf[:9] not in json.dumps(envelope)
        payload = _consume(envelope)
        assert payload["document_kind"] == "cpf" and payload["document"] == f"***.***.*{cpf[7:9]}-{cpf[9:]}"
    # and the catalogue refuses a producer that would send it whole
    whole = {**_consume(_events(config, world)[0]), "document": cpf}
    with pytest.raises(events.ValidationError):
        events.validate_payload("company.created", whole)


def test_the_company_events_are_in_the_catalogue_with_users_as_producer_and_documents_as_consumer():
    for etype in COMPANY_EVENTS:
        spec = events.CATALOGUE[etype]
        assert (spec.producers, spec.consumers) == (("users",), ("documents",))


def _audit(config, firm) -> list:
    with users_db(config).begin() as s:
        return list(s.scalars(select(models.AuditEntry).where(models.AuditEntry.firm_id == firm.id)
                              .order_by(models.AuditEntry.at, models.AuditEntry.id)))


# --------------------------------------------------------------------------- the pages


def test_the_list_searches_by_name_trade_name_cnpj_and_cpf(browser_client, config, world):
    _create(config, world.alfa, name="Alfanumérica Comércio Ltda", document=ALNUM, trade_name="Loja Letras")
    _create(config, world.alfa, name="José Produtor Rural", document=make_cpf(555))
    login(browser_client, config, world.ana)
    html = main_html(_page(browser_client, _url(world.alfa)))
    page = text_of(html)
    for expected in ("Empresas", "Nova empresa", "Importar empresas", "Padaria Pão Quente Ltda", "Mercado Central Ltda",
                     "12.ABC.345/01DE-35", stdnum_cnpj.format(world.alfa_company.cnpj), "Loja Letras"):
        assert expected in page, expected
    assert "Oficina Motor Forte" not in page  # Beta's

    def found(q):
        return text_of(main_html(_page(browser_client, _url(world.alfa, "?q=" + q))))
    cpf = make_cpf(555)
    for q in ("padaria", "PÃO QUENTE", "letras", ALNUM, "12.abc.345%2F01de-35", "abc345", "12.ABC",
              world.alfa_company.cnpj, stdnum_cnpj.format(world.alfa_company.cnpj).replace("/", "%2F"),
              cpf, f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"):
        result = found(q)
        hits = [n for n in ("Padaria Pão Quente", "Alfanumérica Comércio", "José Produtor Rural", "Mercado Central")
                if n in result]
        assert len(hits) == 1, (q, hits)
    assert "Nenhuma empresa encontrada para esta busca." in found("xyzw")
    assert "Nenhuma empresa encontrada" in found(cpf[:6])  # a CPF matches whole only (it is not stored in clear)
    assert "José Produtor Rural" in found("José") and "529" not in found("José")


def test_the_situation_filter_and_the_pager(browser_client, config, world):
    with users_db(config).begin() as s:
        firm = s.get(models.Firm, world.alfa.id)
        for i in range(55):
            services.create_company(s, firm=firm, name=f"Empresa Número{i:03d}", document=make_cnpj(1000 + i))
        services.deactivate_company(s, firm=firm, company=s.get(models.Company, world.alfa_company2.id))
    login(browser_client, config, world.ana)
    html = _page(browser_client, _url(world.alfa))
    assert "Empresa Número049" in html and "Empresa Número050" not in html and "Próxima" in html
    assert "Mercado Central" not in html  # inactive: not among the active ones (the default)
    html = _page(browser_client, _url(world.alfa, "?pagina=2"))
    assert "Empresa Número050" in html and "Padaria Pão Quente" in html and "Anterior" in html
    html = main_html(_page(browser_client, _url(world.alfa, "?situacao=inativas")))
    assert "Mercado Central" in html and "Inativa" in html and "Padaria" not in html
    html = _page(browser_client, _url(world.alfa, "?situacao=todas&q=mercado"))
    assert "Mercado Central" in html
    assert 'href="/e/contabilidade-alfa/configuracoes/empresas?situacao=todas&amp;pagina=2"' in \
           _page(browser_client, _url(world.alfa, "?situacao=todas"))


def test_the_list_query_count_does_not_grow_with_companies(browser_client, config, world):
    login(browser_client, config, world.ana)
    url = _url(world.alfa, "?situacao=todas")
    _page(browser_client, url)
    with count_queries(config, "users") as few:
        _page(browser_client, url)
    with users_db(config).begin() as s:
        firm = s.get(models.Firm, world.alfa.id)
        for i in range(60):
            company = services.create_company(s, firm=firm, name=f"Empresa {i:03d}", document=make_cnpj(2000 + i),
                                              trade_name=f"Fantasia {i}", code=str(i))
            if i % 3 == 0:
                services.deactivate_company(s, firm=firm, company=company)
    with count_queries(config, "users") as many:
        html = _page(browser_client, url)
    assert html.count("Empresa 0") == 50 and "Próxima" in html  # 50 a page, by razão social
    assert few.count == many.count
    with count_queries(config, "users") as searched:
        _page(browser_client, url + "&q=empresa")
    assert searched.count == few.count


def test_nova_empresa_and_editar_through_the_pages(browser_client, config, world):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/nova")
    html = _page(browser_client, new)
    for label in ("Razão social", "Nome fantasia", "CNPJ ou CPF", "Código interno", "Cadastrar empresa"):
        assert f">{label}<" in html, label
    assert 'autocapitalize="characters" spellcheck="false">' in html  # letters of a CNPJ typed in capitals
    response = _post(browser_client, new, {"name": "", "document": "12.345.678/0001-00"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "Informe a razão social." in html and "CNPJ inválido." in html
    assert 'value="12.345.678/0001-00"' in html
    response = _post(browser_client, new, {"name": "Loja Nova", "document": stdnum_cnpj.format(world.alfa_company.cnpj)})
    assert response.status_code == 422
    assert "Já existe uma empresa com este CNPJ neste escritório." in response.get_data(as_text=True)
    response = _post(browser_client, new, {"name": "Loja Nova Ltda", "trade_name": "Loja Nova", "document": ALNUM_TYPED,
                                           "code": "C-9"})
    assert response.status_code == 303 and response.headers["Location"] == _url(world.alfa)
    html = _page(browser_client, _url(world.alfa))
    assert "Empresa Loja Nova Ltda cadastrada." in html and "12.ABC.345/01DE-35" in html
    with users_db(config).begin() as s:
        company = s.scalar(select(models.Company).where(models.Company.cnpj == ALNUM))
    edit = _url(world.alfa, f"/{company.id}/editar")
    html = _page(browser_client, edit)
    assert 'value="12.ABC.345/01DE-35"' in html and 'value="Loja Nova"' in html and 'value="C-9"' in html
    assert "0 usuários de clientes vinculados veem esta empresa" in text_of(html)
    response = _post(browser_client, edit, {"name": "Loja Nova Ltda", "trade_name": "Loja Nova", "document": ALNUM,
                                            "code": "C-9"})
    assert response.status_code == 303 and "Nada foi alterado." in _page(browser_client, _url(world.alfa))
    cpf = make_cpf(909)
    response = _post(browser_client, edit, {"name": "Fulano de Tal", "document": cpf})
    assert response.status_code == 303 and "Alterações salvas." in _page(browser_client, _url(world.alfa))
    changed = _company(config, company.id)
    assert (changed.name, changed.trade_name, changed.code, changed.document_kind, changed.cnpj, changed.cpf) == \
           ("Fulano de Tal", None, None, "cpf", None, cpf)
    response = _post(browser_client, edit, {"name": "Fulano de Tal", "document": world.alfa_company.cnpj})
    assert response.status_code == 422 and "Já existe uma empresa com este CNPJ" in response.get_data(as_text=True)


def test_staff_see_the_list_and_only_admins_change_companies(browser_client, config, world, gisele):
    login(browser_client, config, gisele)
    html = _page(browser_client, _url(world.alfa))
    page = text_of(main_html(html))
    assert "Padaria Pão Quente Ltda" in page
    assert "Somente os administradores do escritório cadastram, editam, desativam e importam empresas." in page
    assert "Nova empresa" not in page and "Importar empresas" not in page and "/editar" not in html
    token = csrf_token(html)
    company = world.alfa_company.id
    for url in ("/nova", f"/{company}/editar", "/importar"):
        assert browser_client.get(_url(world.alfa, url)).status_code == 404, url
    for url in ("/nova", f"/{company}/editar", f"/{company}/desativar", f"/{company}/reativar", "/importar"):
        response = browser_client.post(_url(world.alfa, url), data={"csrf_token": token, "name": "X",
                                                                    "document": make_cnpj(9)})
        assert response.status_code == 404, url
    assert _company(config, company).active and _events(config, world) == []
    login(browser_client, config, world.carlos)  # a client
    assert browser_client.get(_url(world.alfa)).status_code == 404


def test_another_firm_s_company_answers_404(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = _page(browser_client, _url(world.alfa))
    token = csrf_token(html)
    beta_company = world.beta_company.id
    for slug in (world.alfa.slug, world.beta.slug):
        base = LIST.format(slug=slug)
        assert browser_client.get(f"{base}/{beta_company}/editar").status_code == 404
        for action in ("editar", "desativar", "reativar"):
            response = browser_client.post(f"{base}/{beta_company}/{action}",
                                           data={"csrf_token": token, "name": "X", "document": make_cnpj(9)})
            assert response.status_code == 404, (slug, action)
    assert browser_client.get(_url(world.alfa, "/nao-e-um-id/editar")).status_code == 404
    assert _company(config, beta_company).active and _company(config, beta_company).name == "Oficina Motor Forte Ltda"


# --------------------------------------------------------------------------- what a deactivation means


def test_a_deactivated_company_leaves_the_portal_at_once_and_comes_back(browser_client, config, world):
    with users_db(config).begin() as s:  # Carlos sees two companies at Alfa
        carlos = s.get(models.ClientUser, world.carlos_at_alfa.id)
        carlos.companies.append(s.get(models.Company, world.alfa_company2.id))
    home = f"/e/{world.alfa.slug}/"
    login(browser_client, config, world.carlos)
    page = text_of(main_html(_page(browser_client, home)))
    assert "Padaria Pão Quente Ltda" in page and "Mercado Central Ltda" in page

    ana = Person(world.ana.identity_id, world.ana.email, world.ana.name)
    admin = _client_of(config, ana)
    edit = _url(world.alfa, f"/{world.alfa_company.id}/editar")
    assert "1 usuário de cliente vinculado vê esta empresa no Portal do Cliente." in text_of(_page(admin, edit))
    response = _post(admin, _url(world.alfa, f"/{world.alfa_company.id}/desativar"), {}, page_url=edit)
    assert response.status_code == 303
    assert "Ela não aparece mais no Portal do Cliente." in _page(admin, response.headers["Location"])

    page = text_of(main_html(_page(browser_client, home)))  # the very next request
    assert "Padaria Pão Quente Ltda" not in page and "Mercado Central Ltda" in page
    with users_db(config).begin() as s:
        s.get(models.ClientUser, world.carlos_at_alfa.id)  # the links are kept
        assert {c.name for c in s.get(models.ClientUser, world.carlos_at_alfa.id).companies} == \
               {"Padaria Pão Quente Ltda", "Mercado Central Ltda"}
        services.deactivate_company(s, firm=world.alfa, company=s.get(models.Company, world.alfa_company2.id))
    page = text_of(main_html(_page(browser_client, home)))
    assert "Mercado Central Ltda" not in page and "Nenhuma empresa disponível." in page
    # Beta is another firm: its company stays
    assert "Oficina Motor Forte Ltda" in text_of(main_html(_page(browser_client, f"/e/{world.beta.slug}/")))

    response = _post(admin, _url(world.alfa, f"/{world.alfa_company.id}/reativar"), {}, page_url=edit)
    assert "Ela volta a aparecer no Portal do Cliente." in _page(admin, response.headers["Location"])
    page = text_of(main_html(_page(browser_client, home)))
    assert "Padaria Pão Quente Ltda" in page and "Mercado Central Ltda" not in page


def _client_of(config, person):
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from testsupport import build_gateway
    dispatcher, _apps = build_gateway(config)
    client = Client(dispatcher, Response, use_cookies=True)
    login(client, config, person)
    return client


def test_the_client_home_query_count_does_not_depend_on_inactive_companies(browser_client, config, world):
    login(browser_client, config, world.carlos)
    url = f"/e/{world.alfa.slug}/"
    _page(browser_client, url)
    with count_queries(config, "users") as few:
        _page(browser_client, url)
    with users_db(config).begin() as s:
        firm = s.get(models.Firm, world.alfa.id)
        carlos = s.get(models.ClientUser, world.carlos_at_alfa.id)
        for i in range(8):
            company = services.create_company(s, firm=firm, name=f"Extra {i}", document=make_cnpj(3000 + i))
            carlos.companies.append(company)
            if i % 2:
                services.deactivate_company(s, firm=firm, company=company)
    with count_queries(config, "users") as many:
        page = text_of(main_html(_page(browser_client, url)))
    assert "Extra 0" in page and "Extra 1" not in page
    assert few.count == many.count


def test_an_inactive_company_is_not_offered_for_client_users_but_their_links_stay(browser_client, config, world):
    with users_db(config).begin() as s:
        services.deactivate_company(s, firm=world.alfa, company=s.get(models.Company, world.alfa_company2.id))
    login(browser_client, config, world.ana)
    new = f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes/novo"
    form = {"name": "Diana Prado", "email": "diana@example.com", "access": "later", "step": "departamentos"}
    html = _post(browser_client, new, form, page_url=new).get_data(as_text=True)  # Avançar: the Empresas step
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central Ltda" not in html
    response = _post(browser_client, new, {**form, "step": "notificacoes",
                                           "company_ids": [str(world.alfa_company2.id)]}, page_url=new)
    assert response.status_code == 422 and "Empresa inválida." in response.get_data(as_text=True)
    # editing a user linked to an inactive company keeps that link (the form cannot show it)
    with users_db(config).begin() as s:
        carlos = s.get(models.ClientUser, world.carlos_at_alfa.id)
        carlos.companies.append(s.get(models.Company, world.alfa_company2.id))
    edit = f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes/{world.carlos_at_alfa.id}/editar"
    assert "Mercado Central Ltda" not in _page(browser_client, edit)
    response = _post(browser_client, edit, {"name": "Carlos Souza", "email": "carlos@example.com",
                                            "company_ids": [str(world.alfa_company.id)]})
    assert response.status_code == 303
    with users_db(config).begin() as s:
        assert {c.name for c in s.get(models.ClientUser, world.carlos_at_alfa.id).companies} == \
               {"Padaria Pão Quente Ltda", "Mercado Central Ltda"}
        services.reactivate_company(s, firm=world.alfa, company=s.get(models.Company, world.alfa_company2.id))
    assert "Mercado Central Ltda" in _page(browser_client, edit)


# --------------------------------------------------------------------------- imports


def _upload(client, url, content: bytes, filename="empresas.csv"):
    html = client.get(url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_token(html), "arquivo": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")


def _run_imports(config) -> int:
    total = 0
    while n := consumers.process_imports(config):
        total += n
    return total


HEADER = ["Razão social", "Nome fantasia", "CNPJ/CPF", "Código"]


def test_importing_companies_preview_then_background_job_then_report(browser_client, config, world):
    login(browser_client, config, world.ana)
    cpf = make_cpf(8080)
    rows = [HEADER,
            ["Loja Alfanumérica Ltda", "Loja A", ALNUM_TYPED, "A1"],
            ["Maria Produtora Rural", "", f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}", ""],
            ["Loja Numérica Ltda", "", make_cnpj(4001), "N1"],
            ["", "Sem Razão", make_cnpj(4002), ""],                                    # no razão social
            ["CNPJ Errado Ltda", "", "12.345.678/0001-00", ""],                       # bad CNPJ
            ["Já Existe Ltda", "", stdnum_cnpj.format(world.alfa_company.cnpj), ""],  # taken in the firm
            ["Repetida Ltda", "", ALNUM, ""],                                          # repeated in the file
            ["Sem Documento Ltda", "", "", ""]]
    url = _url(world.alfa, "/importar")
    html = _page(browser_client, url)
    assert "Razão social;Nome fantasia;CNPJ/CPF;Código" in html
    response = _upload(browser_client, url, csv_bytes(rows))
    assert response.status_code == 303
    job_url = response.headers["Location"]
    job_id = uuid.UUID(job_url.rstrip("/").rsplit("/", 1)[1])
    assert job_url == _url(world.alfa, f"/importar/{job_id}")
    page = text_of(main_html(_page(browser_client, job_url)))
    assert "Importar empresas" in page and "Linhas no arquivo 8" in page and "Linhas válidas 3" in page
    for message in ("Informe a razão social.", "CNPJ inválido.", "Já existe uma empresa com este CNPJ neste escritório.",
                    "CNPJ/CPF repetido no arquivo.", "Informe o CNPJ ou o CPF."):
        assert message in page, message
    assert "Importar 3 empresas válidas" in page
    # the client users' pages do not show a company import
    assert browser_client.get(f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes/importar/{job_id}"
                              ).status_code == 404
    assert _events(config, world) == []
    # another firm's admin: 404 under either slug, confirmation included
    login(browser_client, config, world.bruno)
    beta_token = csrf_token(_page(browser_client, LIST.format(slug=world.beta.slug)))
    for slug in (world.alfa.slug, world.beta.slug):
        other = LIST.format(slug=slug) + f"/importar/{job_id}"
        assert browser_client.get(other).status_code == 404
        assert browser_client.post(other, data={"csrf_token": beta_token}).status_code == 404
    login(browser_client, config, world.ana)
    response = _post(browser_client, job_url, {})
    assert response.status_code == 303
    assert "Importação iniciada: 3 empresas serão cadastradas." in _page(browser_client, job_url)
    assert _run_imports(config) == 3
    page = text_of(main_html(_page(browser_client, job_url)))
    assert "Importação concluída: 3 empresas cadastradas, 5 linhas não importadas." in page
    assert "Empresas cadastradas 3" in page
    with users_db(config).begin() as s:
        created = {c.name: c for c in s.scalars(select(models.Company).where(models.Company.firm_id == world.alfa.id))}
    assert created["Loja Alfanumérica Ltda"].cnpj == ALNUM and created["Loja Alfanumérica Ltda"].trade_name == "Loja A"
    assert created["Maria Produtora Rural"].cpf == cpf and created["Loja Numérica Ltda"].code == "N1"
    assert "CNPJ Errado Ltda" not in created and "Repetida Ltda" not in created
    assert sorted(e["type"] for e in _events(config, world)) == ["company.created"] * 3
    imported = [e for e in _audit(config, world.alfa) if e.action == "company.imported"]
    assert len(imported) == 1 and imported[0].details["valid_rows"] == 3 and imported[0].actor_email == world.ana.email


def test_a_company_import_row_taken_meanwhile_is_reported_not_half_created(browser_client, config, world):
    login(browser_client, config, world.ana)
    url = _url(world.alfa, "/importar")
    response = _upload(browser_client, url, csv_bytes([HEADER, ["Loja A", "", ALNUM, ""], ["Loja B", "", make_cnpj(5), ""]]))
    job_url = response.headers["Location"]
    _post(browser_client, job_url, {})
    _create(config, world.alfa, name="Loja A à mão", document=ALNUM)  # created by hand meanwhile
    assert _run_imports(config) == 2
    page = text_of(main_html(_page(browser_client, job_url)))
    assert "Importação concluída: 1 empresas cadastradas, 1 linhas não importadas." in page
    assert "Não cadastradas 1" in page and "Já existe uma empresa com este CNPJ neste escritório." in page
    with users_db(config).begin() as s:
        assert s.scalar(select(func.count()).select_from(models.Company).where(models.Company.cnpj == ALNUM)) == 1


def test_an_xlsx_of_companies_and_a_wrong_header(browser_client, config, world):
    from openpyxl import Workbook
    workbook = Workbook()
    workbook.active.append(["RAZAO SOCIAL", "Nome Fantasia", "CNPJ", "Código interno"])
    workbook.active.append(["Loja X Ltda", None, ALNUM, 12])
    buffer = io.BytesIO()
    workbook.save(buffer)
    login(browser_client, config, world.ana)
    url = _url(world.alfa, "/importar")
    response = _upload(browser_client, url, buffer.getvalue(), "empresas.xlsx")
    assert response.status_code == 303
    assert "Importar 1 empresa válida" in _page(browser_client, response.headers["Location"])
    response = _upload(browser_client, url, csv_bytes([["Nome", "E-mail"], ["A B", "a@b.co"]]))
    assert response.status_code == 422
    assert ("Cabeçalho inválido: a primeira linha deve ser Razão social;Nome fantasia;CNPJ/CPF;Código."
            in response.get_data(as_text=True))
    response = _upload(browser_client, url, csv_bytes([HEADER]))
    assert response.status_code == 422 and "O arquivo não tem nenhuma linha de empresa." in response.get_data(as_text=True)


def test_the_client_user_import_names_companies_by_any_document_and_only_active_ones(browser_client, config, world):
    person = _create(config, world.alfa, name="Sítio Boa Vista", document=make_cpf(31))
    _create(config, world.alfa, name="Loja Letras Ltda", document=ALNUM, trade_name="Loja Letras")
    with users_db(config).begin() as s:
        services.deactivate_company(s, firm=world.alfa, company=s.get(models.Company, world.alfa_company2.id))
    cpf = make_cpf(31)
    rows = [["Nome", "CPF", "Telefone", "E-mail", "Empresas"],
            ["Diana Prado", "", "", "diana@example.com", f"{ALNUM_TYPED}|{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"],
            ["Eva Lima", "", "", "eva@example.com", "loja letras"],
            ["Gil Souza", "", "", "gil@example.com", "Mercado Central Ltda"]]            # inactive
    login(browser_client, config, world.ana)
    response = _upload(browser_client, f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes/importar",
                       csv_bytes(rows), "usuarios.csv")
    job_url = response.headers["Location"]
    page = text_of(main_html(_page(browser_client, job_url)))
    assert "Linhas válidas 2" in page and "Empresa não encontrada: Mercado Central Ltda." in page
    # a company import's pages do not show a client-user import
    job_id = job_url.rsplit("/", 1)[1]
    assert browser_client.get(_url(world.alfa, f"/importar/{job_id}")).status_code == 404
    _post(browser_client, job_url, {})
    assert _run_imports(config) == 2
    with users_db(config).begin() as s:
        diana = s.scalar(select(models.ClientUser).where(models.ClientUser.email == "diana@example.com"))
        assert {c.id for c in diana.companies} == {person.id, s.scalar(select(models.Company.id).where(
            models.Company.cnpj == ALNUM))}
        eva = s.scalar(select(models.ClientUser).where(models.ClientUser.email == "eva@example.com"))
        assert [c.name for c in eva.companies] == ["Loja Letras Ltda"]


# --------------------------------------------------------------------------- audit log page


def test_company_actions_in_the_audit_log_filterable_by_action(browser_client, config, world):
    login(browser_client, config, world.ana)
    _post(browser_client, _url(world.alfa, "/nova"), {"name": "Loja Auditada Ltda", "document": ALNUM})
    with users_db(config).begin() as s:
        company_id = s.scalar(select(models.Company.id).where(models.Company.cnpj == ALNUM))
    edit = _url(world.alfa, f"/{company_id}/editar")
    _post(browser_client, _url(world.alfa, f"/{company_id}/desativar"), {}, page_url=edit)
    audit = f"/e/{world.alfa.slug}/configuracoes/auditoria"
    page = text_of(main_html(_page(browser_client, audit)))
    assert "Empresa cadastrada" in page and "Empresa desativada" in page and "Loja Auditada Ltda" in page
    html = _page(browser_client, audit + "?acao=company.deactivated")
    page = text_of(main_html(html))
    assert "Empresa desativada" in page and "Loja Auditada Ltda" in page
    for label in ("Empresa cadastrada", "Empresa editada", "Empresa desativada", "Empresa reativada",
                  "Importação de empresas"):
        assert label in html, label  # the Ação filter offers every company action


# --------------------------------------------------------------------------- the operator's command


def test_balcao_create_company_takes_a_cpf_an_alphanumeric_cnpj_and_a_nome_fantasia(config, world, capsys,
                                                                                       monkeypatch):
    import balcao_cli
    monkeypatch.setattr("services.common.config.load_config", lambda: config)
    monkeypatch.setattr(balcao_cli, "load_config", lambda: config, raising=False)
    cpf = make_cpf(6060)
    assert balcao_cli.main(["create-company", "--firm", world.alfa.slug, "--name", "Sítio Dois Irmãos",
                            "--cpf", f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"]) in (0, None)
    assert balcao_cli.main(["create-company", "--firm", world.alfa.slug, "--name", "Loja Nova Ltda",
                            "--cnpj", ALNUM_TYPED, "--nome-fantasia", "Loja Nova"]) in (0, None)
    assert balcao_cli.main(["create-company", "--firm", world.alfa.slug, "--name", "Outra",
                            "--cnpj", ALNUM]) == 2
    assert "Já existe uma empresa com este CNPJ neste escritório." in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # one document, not both
        balcao_cli.main(["create-company", "--firm", world.alfa.slug, "--name", "X", "--cnpj", make_cnpj(1),
                         "--cpf", cpf])
    assert usage.value.code == 2
    with users_db(config).begin() as s:
        made = {c.name: c for c in s.scalars(select(models.Company).where(models.Company.firm_id == world.alfa.id))}
    assert made["Sítio Dois Irmãos"].cpf == cpf and made["Loja Nova Ltda"].cnpj == ALNUM
    assert made["Loja Nova Ltda"].trade_name == "Loja Nova"



def test_the_pages_in_english(browser_client, config, world):
    from services.users.tests.test_pages import _compile_english_catalogue
    _compile_english_catalogue()
    login(browser_client, config, world.ana)
    browser_client.set_cookie("balcao_locale", "en")
    page = text_of(main_html(_page(browser_client, _url(world.alfa))))
    for expected in ("New company", "Import companies", "Legal name (razão social)", "Trade name", "Status", "Active"):
        assert expected in page, expected
    page = text_of(main_html(_page(browser_client, _url(world.alfa, f"/{world.alfa_company.id}/editar"))))
    assert "Edit company" in page and "1 linked client user sees this company in the client portal." in page
    page = text_of(main_html(_page(browser_client, _url(world.alfa, "/importar"))))
    assert "Import companies" in page and "numeric or alphanumeric" in page

"""The staff pages (Configurações › Usuários de Clientes) through the one-origin browser client."""
import re
import uuid
from datetime import UTC, datetime

from services.users import models, services
from services.users.tests.conftest import (
    Person,
    form_fields,
    get_client_user,
    login,
    main_html,
    make_cnpj,
    make_cpf,
    outbox_events,
    text_of,
    users_db,
)
from testsupport import count_queries, csrf_token

LIST = "/e/{slug}/configuracoes/usuarios-de-clientes"


def _url(firm, suffix=""):
    return LIST.format(slug=firm.slug) + suffix


def _page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def _post(client, url, data, *, page_url=None):
    html = _page(client, page_url or url)
    return client.post(url, data={"csrf_token": csrf_token(html), **data})


def test_wizard_registers_a_user_and_sends_the_invitation(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = _page(browser_client, _url(world.alfa))
    assert "Configurações › " in text_of(html) and "Usuários de Clientes" in html and "Novo Usuário" in html
    new = _url(world.alfa, "/novo")
    html = _page(browser_client, new)
    for label in ("Nome", "CPF", "Telefone", "E-mail de contato", "Acesso ao Portal do Cliente", "Ativar",
                  "Envie agora", "Enviar mais tarde", "Avançar"):
        assert f">{label}<" in html, label
    assert 'data-dialog-open="dlg-acesso"' in html and '<dialog id="dlg-acesso"' in html
    assert 'id="f-access"' in html and 'id="f-access-label"' in html
    assert "Passo 1 de 5: Geral" in text_of(html)
    token = csrf_token(html)
    typed = {"name": "Diana", "cpf": "123.456.789-00", "phone": "(11) 98765-4321", "email": "diana@",
             "access": "now", "step": "geral"}
    response = browser_client.post(new, data={"csrf_token": token, **typed})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for message in ("Informe nome e sobrenome.", "CPF inválido.", "E-mail inválido."):
        assert message in html
    assert 'value="Diana"' in html and 'value="123.456.789-00"' in html and 'value="(11) 98765-4321"' in html
    assert 'value="diana@"' in html and 'id="f-access" name="access" value="now"' in html

    typed.update(name="Diana Prado", cpf=make_cpf(42), email="Diana@Example.com")
    response = browser_client.post(new, data={"csrf_token": token, **typed})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Passo 2 de 5: Departamentos" in text_of(html)
    html = browser_client.post(new, data=form_fields(html, "/novo")).get_data(as_text=True)
    assert "Passo 3 de 5: Empresas" in text_of(html)
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central Ltda" in html
    assert "Oficina Motor Forte Ltda" not in html  # Beta's company
    assert outbox_events(config, "client_user.access_activated")[-1]["payload"]["name"] == "Carlos Souza"

    fields = form_fields(html, "/novo")
    fields.add("company_ids", str(world.alfa_company2.id))
    html = browser_client.post(new, data=fields).get_data(as_text=True)
    assert "Passo 4 de 5: Permissões" in text_of(html)
    html = browser_client.post(new, data=form_fields(html, "/novo")).get_data(as_text=True)
    assert "Passo 5 de 5: Notificações" in text_of(html) and ">Concluir<" in html
    response = browser_client.post(new, data=form_fields(html, "/novo"))
    assert response.status_code == 303
    detail_url = response.headers["Location"]
    html = _page(browser_client, detail_url)
    assert "Usuário registrado." in html
    assert "O convite para diana@example.com entrou na fila de envio." in html
    assert "Diana Prado" in html and make_cpf(42)[:3] + "." in html and "(11) 98765-4321" in html
    assert "Mercado Central Ltda" in html and "Padaria Pão Quente Ltda" not in html
    # one truthful state: the invitation has not gone out yet, and nothing on the page says it has
    assert "Aguardando envio" in html
    assert "Convite enviado" not in html and "enviado para" not in html
    event = outbox_events(config, "client_user.access_activated")[-1]
    assert event["payload"]["email"] == "diana@example.com" and event["payload"]["send_now"] is True


def test_wizard_enviar_mais_tarde_and_back_keep_what_was_typed(browser_client, config, world):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/novo")
    token = csrf_token(_page(browser_client, new))
    typed = {"name": "Elisa Moura", "cpf": "", "phone": "", "email": "elisa@example.com", "access": "later"}
    html = browser_client.post(new, data={"csrf_token": token, "step": "geral", **typed}).get_data(as_text=True)
    back = browser_client.post(new, data={**form_fields(html, "/novo"), "voltar": "1"})
    assert back.status_code == 200 and 'value="Elisa Moura"' in back.get_data(as_text=True)
    response = browser_client.post(new, data={"csrf_token": csrf_token(html), "step": "notificacoes", **typed})
    assert response.status_code == 303
    html = _page(browser_client, response.headers["Location"])
    assert "Usuário registrado." in html and "O convite para" not in html and "Não convidado" in html
    assert outbox_events(config, "client_user.access_activated")[-1]["payload"]["send_now"] is False


def test_noscript_radio_choice_is_used_without_javascript(browser_client, config, world):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/novo")
    token = csrf_token(_page(browser_client, new))
    data = {"csrf_token": token, "step": "notificacoes", "name": "Fabio Nunes", "email": "fabio@example.com",
            "access": ["", "now"]}
    assert browser_client.post(new, data=data).status_code == 303
    assert outbox_events(config, "client_user.access_activated")[-1]["payload"]["email"] == "fabio@example.com"


def test_wizard_reports_a_duplicate_email(browser_client, config, world):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/novo")
    token = csrf_token(_page(browser_client, new))
    response = browser_client.post(new, data={"csrf_token": token, "step": "geral", "name": "Carlos Souza",
                                              "email": "CARLOS@example.com"})
    assert response.status_code == 422
    assert "Já existe um usuário com este e-mail neste escritório." in response.get_data(as_text=True)


def test_posting_without_csrf_token_is_refused(browser_client, config, world):
    login(browser_client, config, world.ana)
    response = browser_client.post(_url(world.alfa, "/novo"), data={"step": "notificacoes", "name": "Gil Souza",
                                                                     "email": "gil@example.com"})
    assert response.status_code == 400
    assert outbox_events(config, "client_user.access_activated")[-1]["payload"]["email"] != "gil@example.com"


def test_invitation_state_on_the_details_page(browser_client, config, world):
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=world.alfa, name="Helena Dias", email="helena@example.com",
                                           phone="+5511987654321", access="now")
    login(browser_client, config, world.ana)
    url = _url(world.alfa, f"/{cu.id}")
    assert "Aguardando envio" in _page(browser_client, url)
    invitation_id = uuid.uuid4()
    with users_db(config).begin() as s:
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=world.alfa.id,
                                           client_user_id=cu.id,
                                           expires_at=datetime(2030, 1, 1, tzinfo=UTC))
        services.record_delivery(s, reference=f"invitation:{invitation_id}", error="550 caixa inexistente")
    assert "Falha no envio: 550 caixa inexistente" in _page(browser_client, url)
    with users_db(config).begin() as s:
        services.record_delivery(s, reference=f"invitation:{invitation_id}",
                                 sent_at=datetime(2026, 3, 4, 15, 30, tzinfo=UTC))
    html = _page(browser_client, url)
    assert "Convite enviado em 04/03/2026 12:30" in html  # Brasília time
    assert "(11) 98765-4321" in html


def _age_invitation_request(config, client_user_id, seconds=120):
    """Pretend the last invitation was asked for `seconds` ago (past the resend cooldown)."""
    from datetime import datetime, timedelta
    with users_db(config).begin() as s:
        s.get(models.ClientUser, client_user_id).invitation_requested_at = (
            datetime.now(UTC) - timedelta(seconds=seconds))


def test_actions_change_the_status_and_flash(browser_client, config, world):
    login(browser_client, config, world.ana)
    cu = world.carlos_at_alfa
    url = _url(world.alfa, f"/{cu.id}")
    html = _page(browser_client, url)
    assert "Acesso ativo" in html and ">Desativar<" in html and ">Reativar<" not in html and ">Reenviar convite<" not in html
    response = _post(browser_client, url + "/desativar", {}, page_url=url)
    assert response.status_code == 303 and response.headers["Location"].endswith(url)
    html = _page(browser_client, url)
    assert "Usuário desativado." in html and "Inativo" in html and ">Reativar<" in html
    response = _post(browser_client, url + "/reativar", {}, page_url=url)
    html = _page(browser_client, response.headers["Location"])
    assert "Usuário reativado. Um novo convite será enviado para carlos@example.com." in html
    assert "Aguardando envio" in html and ">Reenviar convite<" in html
    # within the resend cooldown, a second invitation is refused with when it can be sent
    _post(browser_client, url + "/reenviar-convite", {}, page_url=url)
    assert "Você poderá reenviá-lo em" in _page(browser_client, url)
    _age_invitation_request(config, cu.id)
    _post(browser_client, url + "/reenviar-convite", {}, page_url=url)
    assert "O convite foi reenviado para carlos@example.com." in _page(browser_client, url)
    _post(browser_client, url + "/excluir", {}, page_url=url)
    html = _page(browser_client, url)
    assert "Usuário excluído." in html and "Excluído" in html and ">Excluir<" not in html
    assert get_client_user(config, cu.id).status == "deleted"
    # a refused action explains itself
    response = _post(browser_client, url + "/reenviar-convite", {}, page_url=url)
    assert response.status_code == 303 and "Só é possível reenviar" in _page(browser_client, url)


def test_edit_keeps_input_on_error_and_saves(browser_client, config, world):
    login(browser_client, config, world.ana)
    cu = world.carlos_at_alfa
    url = _url(world.alfa, f"/{cu.id}/editar")
    html = _page(browser_client, url)
    assert 'value="Carlos Souza"' in html and "checked" in html
    token = csrf_token(html)
    response = browser_client.post(url, data={"csrf_token": token, "name": "Carlos", "email": "carlos@example.com",
                                              "cpf": "999", "company_ids": [str(world.alfa_company2.id)]})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "Informe nome e sobrenome." in html and "CPF inválido." in html
    assert 'value="999"' in html
    response = browser_client.post(url, data={"csrf_token": token, "name": "Carlos Alberto Souza",
                                              "email": "carlos@example.com", "cpf": make_cpf(7),
                                              "company_ids": [str(world.alfa_company2.id)]})
    assert response.status_code == 303
    html = _page(browser_client, response.headers["Location"])
    assert "Alterações salvas." in html and "Carlos Alberto Souza" in html and "Mercado Central Ltda" in html
    response = browser_client.post(url, data={"csrf_token": token, "name": "Carlos Souza",
                                              "email": "novo@example.com"})
    assert response.status_code == 422
    assert "Não é possível alterar o e-mail de um usuário ativo." in response.get_data(as_text=True)


def _add_users(config, firm, n, start=0):
    with users_db(config).begin() as s:
        companies = [services.create_company(s, firm=firm, name=f"Empresa {start + i}", cnpj=make_cnpj(5000 + start + i))
                     for i in range(3)]
        for i in range(start, start + n):
            services.register_client_user(s, firm=firm, name=f"Usuário Número{i:03d}", email=f"u{i:03d}@example.com",
                                          company_ids=[c.id for c in companies[: i % 3 + 1]])


def test_list_query_count_does_not_grow_with_rows(browser_client, config, world):
    login(browser_client, config, world.ana)
    _add_users(config, world.alfa, 5)
    url = _url(world.alfa)
    _page(browser_client, url)
    with count_queries(config, "users") as few:
        html = _page(browser_client, url)
    assert html.count("Usuário Número") == 5
    _add_users(config, world.alfa, 55, start=5)
    with count_queries(config, "users") as many:
        html = _page(browser_client, url)
    assert html.count("Usuário Número") == 49 and "Carlos Souza" in html  # 50 a page
    assert few.count == many.count


def test_each_row_shows_its_own_companies_by_name(browser_client, config, world):
    """The Empresas column: each client user's companies (several users sharing one among them),
    in name order, none for a person linked to none."""
    login(browser_client, config, world.ana)
    with users_db(config).begin() as s:
        zeta = services.create_company(s, firm=world.alfa, name="Zeta Transportes Ltda", cnpj=make_cnpj(301))
        alfa_company, alfa_company2 = s.merge(world.alfa_company), s.merge(world.alfa_company2)
        services.register_client_user(s, firm=world.alfa, name="Beatriz Campos", email="beatriz@example.com",
                                      company_ids=[zeta.id, alfa_company.id, alfa_company2.id])
        services.register_client_user(s, firm=world.alfa, name="Davi Nunes", email="davi@example.com",
                                      company_ids=[zeta.id])
        services.register_client_user(s, firm=world.alfa, name="Elisa Prado", email="elisa@example.com",
                                      company_ids=[])
    html = _page(browser_client, _url(world.alfa))
    cells = dict(re.findall(r'>([^<>]+)</a></td>.*?data-label="Empresas">([^<]*)</td>', html, re.S))
    assert cells["Beatriz Campos"] == "Mercado Central Ltda, Padaria Pão Quente Ltda, Zeta Transportes Ltda"
    assert cells["Carlos Souza"] == "Padaria Pão Quente Ltda"
    assert cells["Davi Nunes"] == "Zeta Transportes Ltda"
    assert cells["Elisa Prado"] == ""


def test_list_searches_send_the_same_statements_whatever_the_matches(browser_client, config, world):
    """The e-mail-fragment and name searches: constant SQL per request with 3 or 60 matches, the
    page still by name, 50 to a page."""
    login(browser_client, config, world.ana)
    _add_users(config, world.alfa, 3)
    url = _url(world.alfa)
    counts = {}
    for q in ("@EXAMPLE.com", "número"):
        _page(browser_client, url + "?q=" + q)
        with count_queries(config, "users") as few:
            html = _page(browser_client, url + "?q=" + q)
        assert html.count("Usuário Número") == 3
        counts[q] = few.count
    _add_users(config, world.alfa, 57, start=3)
    for q in ("@EXAMPLE.com", "número"):
        with count_queries(config, "users") as many:
            html = _page(browser_client, url + "?q=" + q)
        assert many.count == counts[q]
        names = re.findall(r"Usuário Número\d{3}", html)
        assert "Próxima" in html and len(names) >= 49  # the world's own client users may come first
        names += re.findall(r"Usuário Número\d{3}", _page(browser_client, url + "?pagina=2&q=" + q))
        assert names == [f"Usuário Número{i:03d}" for i in range(60)]  # by name, across the pages


def test_list_search_paging_and_deleted_toggle(browser_client, config, world):
    login(browser_client, config, world.ana)
    _add_users(config, world.alfa, 55)
    url = _url(world.alfa)
    html = _page(browser_client, url)
    assert "Próxima" in html and "Usuário Número048" in html and "Usuário Número049" not in html
    assert "Carlos Souza" in html  # 50 a page, by name
    html = _page(browser_client, url + "?pagina=2")
    assert "Usuário Número049" in html and "Usuário Número054" in html and "Carlos Souza" not in html
    assert "Anterior" in html and "Próxima" not in html
    html = _page(browser_client, url + "?q=U007%40EXAMPLE")
    assert "Usuário Número007" in html and "Usuário Número008" not in html
    html = _page(browser_client, url + "?q=carlos")
    assert "Carlos Souza" in html and "Usuário Número" not in html
    with users_db(config).begin() as s:
        services.delete_client_user(s, firm=world.alfa, client_user=s.get(models.ClientUser, world.carlos_at_alfa.id))
    assert "Carlos Souza" not in _page(browser_client, url + "?q=carlos")
    html = _page(browser_client, url + "?q=carlos&excluidos=1")
    assert "Carlos Souza" in html and "Excluído" in html


def test_status_labels_in_the_list(browser_client, config, world):
    with users_db(config).begin() as s:
        services.register_client_user(s, firm=world.alfa, name="Nina Alves", email="nina@example.com")
        services.register_client_user(s, firm=world.alfa, name="Otto Alves", email="otto@example.com", access="now")
    login(browser_client, config, world.ana)
    html = _page(browser_client, _url(world.alfa))
    rows = re.search(r"<tbody>.*?</tbody>", html, re.S).group(0)  # not the Situação filter's options
    assert "Não convidado" in rows and "Aguardando envio" in rows and ">Acesso ativo<" in rows
    assert f'href="{_url(world.alfa, "/" + str(world.carlos_at_alfa.id))}"' in html


def _id_routes(firm, cu_id):
    base = _url(firm, f"/{cu_id}")
    return ([("get", base), ("get", base + "/editar"), ("post", base + "/editar")]
            + [("post", base + action) for action in ("/desativar", "/reativar", "/excluir", "/reenviar-convite")])


def test_every_id_route_is_404_for_the_other_firms_staff(browser_client, config, world):
    login(browser_client, config, world.bruno)
    token = csrf_token(_page(browser_client, _url(world.beta, "/novo")))
    for method, url in _id_routes(world.alfa, world.carlos_at_alfa.id):
        # Alfa's user under Beta's slug (Bruno is staff there) and under Alfa's slug (not a member)
        beta_url = url.replace(world.alfa.slug, world.beta.slug)
        for target in (beta_url, url):
            response = getattr(browser_client, method)(target, data={"csrf_token": token, "name": "X Y",
                                                                     "email": "x@example.com"})
            assert response.status_code == 404, (method, target)
    missing = _url(world.beta, f"/{uuid.uuid4()}")
    assert browser_client.get(missing).status_code == 404
    assert browser_client.get(_url(world.beta, "/nao-e-um-id")).status_code == 404
    assert get_client_user(config, world.carlos_at_alfa.id).status == "active"


def test_staff_pages_are_404_for_clients(browser_client, config, world):
    login(browser_client, config, world.carlos)
    token = csrf_token(_page(browser_client, f"/e/{world.alfa.slug}/"))
    assert browser_client.get(_url(world.alfa)).status_code == 404
    assert browser_client.get(_url(world.alfa, "/novo")).status_code == 404
    for method, url in _id_routes(world.alfa, world.carlos_at_alfa.id):
        response = getattr(browser_client, method)(url, data={"csrf_token": token})
        assert response.status_code == 404, (method, url)
    assert get_client_user(config, world.carlos_at_alfa.id).status == "active"


def test_beta_staff_pages_never_show_alfa(browser_client, config, world):
    login(browser_client, config, world.bruno)
    for url in (_url(world.beta), _url(world.beta, f"/{world.carlos_at_beta.id}"),
                _url(world.beta, f"/{world.carlos_at_beta.id}/editar"), _url(world.beta, "/novo"),
                f"/e/{world.beta.slug}/"):
        html = _page(browser_client, url)
        for secret in ("Alfa", "Padaria Pão Quente", "Mercado Central", str(world.carlos_at_alfa.id)):
            assert secret not in html, (url, secret)


def test_staff_of_one_firm_only_see_that_firm(browser_client, config, world):
    paula = Person(uuid.uuid4(), "paula@beta.com.br", "Paula Reis")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=world.beta, identity_id=paula.identity_id, name=paula.name,
                                  email=paula.email,  # role "staff" (a Colaborador), not an admin
                                  company_ids=[world.beta_company.id])  # her carteira: Carlos's company
    login(browser_client, config, paula)
    # her own firm: the client users list and a client user's page, with Beta's data
    html = _page(browser_client, _url(world.beta))
    assert "Carlos Souza" in main_html(html) and f"/{world.carlos_at_beta.id}" in html
    assert "Carlos Souza" in main_html(_page(browser_client, _url(world.beta, f"/{world.carlos_at_beta.id}")))
    assert "Contabilidade Alfa" not in html
    # the other firm: every page answers 404, like a firm that does not exist
    for url in (f"/e/{world.alfa.slug}/", _url(world.alfa), _url(world.alfa, f"/{world.carlos_at_alfa.id}"),
                _url(world.alfa, "/novo"), _url(world.beta, f"/{world.carlos_at_alfa.id}")):
        assert browser_client.get(url).status_code == 404, url
    # somebody who is staff nowhere sees neither
    login(browser_client, config, Person(uuid.uuid4(), "ninguem@example.com", "Ninguém Silva"))
    assert browser_client.get(_url(world.beta)).status_code == 404
    assert browser_client.get(_url(world.alfa)).status_code == 404


def _compile_english_catalogue():
    from pathlib import Path

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    po = Path(__file__).parents[1] / "translations" / "en" / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:  # `make translations` builds it too
        with po.open("rb") as src, mo.open("wb") as dst:
            write_mo(dst, read_po(src))


def test_pages_in_english(browser_client, config, world):
    _compile_english_catalogue()
    login(browser_client, config, world.ana)
    browser_client.set_cookie("balcao_locale", "en")
    html = _page(browser_client, _url(world.alfa))
    assert "Client Users" in html and "New User" in html and "Show deleted" in html and ">Access active<" in html
    new = _url(world.alfa, "/novo")
    token = csrf_token(_page(browser_client, new))
    html = browser_client.post(new, data={"csrf_token": token, "step": "geral", "name": "Diana",
                                          "email": "diana@example.com", "cpf": "1"}).get_data(as_text=True)
    assert "Enter first and last name." in html and "Invalid CPF." in html


def test_handlers_match_the_catalogue():
    from services.common.events import consumed_by
    from services.users import consumers
    assert set(consumers.HANDLERS) == consumed_by("users")


def test_wizard_refuses_another_firms_company(browser_client, config, world):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/novo")
    token = csrf_token(_page(browser_client, new))
    typed = {"csrf_token": token, "step": "notificacoes", "name": "Ivo Lima", "email": "ivo@example.com", "access": "now"}
    for bad in (str(world.beta_company.id), "nao-e-empresa"):
        response = browser_client.post(new, data={**typed, "company_ids": [str(world.alfa_company.id), bad]})
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and "Empresa inválida." in html
        assert "Passo 3 de 5: Empresas" in text_of(html)  # back on the step the error belongs to
        assert 'name="email" value="ivo@example.com"' in html
    assert "Oficina Motor Forte" not in html
    assert all(e["payload"]["email"] != "ivo@example.com" for e in outbox_events(config, "client_user.access_activated"))

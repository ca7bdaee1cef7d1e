"""The staff home's counts of client users by invitation state (Aguardando envio, Convite enviado,
Falha no envio, Convite expirado, Acesso ativo), each linking to Configurações › Usuários de
Clientes filtered to that state (`?estado=`); a Colaborador's counts and list cover their carteira."""
from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.users import models, queries, services
from services.users.tests.conftest import Person, login, main_html, text_of, users_db
from testsupport import count_queries

LIST = "/e/{slug}/configuracoes/usuarios-de-clientes"
KEYS = ("aguardando", "enviado", "falha", "expirado", "ativo")
NAMES = ("Carlos Souza", "Wanda Espera", "Sérgio Enviado", "Regina Repete", "Fausto Falha", "Expedito Vencido",
         "Nina Nunca", "Ivo Inativo", "Ester Excluída")


def _register(s, firm, name, *, company_ids=(), access="now"):
    email = name.split()[0].lower().replace("é", "e") + "@example.com"
    return services.register_client_user(s, firm=firm, name=name, email=email, company_ids=list(company_ids),
                                         access=access)


def _invitation(s, firm, cu, *, expires_at=None) -> str:
    invitation_id = uuid.uuid4()
    services.record_invitation_created(s, invitation_id=invitation_id, firm_id=firm.id, client_user_id=cu.id,
                                       expires_at=expires_at or datetime.now(UTC) + timedelta(days=7))
    return f"invitation:{invitation_id}"


@pytest.fixture
def states(config, world):
    """At Alfa, besides Carlos (active, Padaria): one client user in each invitation state, and three
    that show no invitation (never invited, deactivated, deleted). Mercado Central's users are
    outside Paula's carteira (Padaria)."""
    padaria, mercado = world.alfa_company.id, world.alfa_company2.id
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        _register(s, alfa, "Wanda Espera", company_ids=[padaria])  # waiting: nothing sent yet
        sent = _register(s, alfa, "Sérgio Enviado", company_ids=[padaria])
        services.record_delivery(s, reference=_invitation(s, alfa, sent))
        retrying = _register(s, alfa, "Regina Repete", company_ids=[mercado])
        services.record_delivery(s, reference=_invitation(s, alfa, retrying), error="Caixa cheia", permanent=False)
        failed = _register(s, alfa, "Fausto Falha", company_ids=[padaria])
        services.record_delivery(s, reference=_invitation(s, alfa, failed), error="Usuário inexistente",
                                 permanent=True)
        expired = _register(s, alfa, "Expedito Vencido", company_ids=[mercado])
        _invitation(s, alfa, expired, expires_at=datetime.now(UTC) - timedelta(hours=1))
        _register(s, alfa, "Nina Nunca", company_ids=[padaria], access=None)
        inactive = _register(s, alfa, "Ivo Inativo", company_ids=[padaria])
        services.deactivate_client_user(s, firm=alfa, client_user=inactive)
        deleted = _register(s, alfa, "Ester Excluída", company_ids=[padaria])
        services.delete_client_user(s, firm=alfa, client_user=deleted)
    return world


@pytest.fixture
def paula(config, world):
    """A Colaborador of Alfa whose carteira is Padaria."""
    person = Person(uuid.uuid4(), "paula@alfa.com.br", "Paula Reis")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=person.identity_id,
                                  name=person.name, email=person.email, role="staff",
                                  company_ids=[world.alfa_company.id])
    return person


def _counts(html: str) -> dict[str, tuple[int, str, str]]:
    """{estado: (count, label, link)} as the home shows them."""
    section = re.search(r'<section class="card" aria-labelledby="situacao-convites">.*?</section>', html, re.S)
    assert section, "no counts on the home"
    found = re.findall(r'<li><a href="([^"]+)"><span class="count">(\d+)</span> ([^<]+)</a></li>', section.group(0))
    counts = {}
    for href, n, label in found:
        key = re.search(r"estado=(\w+)", href)
        assert key, href
        counts[key.group(1)] = (int(n), label.strip(), href.replace("&amp;", "&"))
    return counts


def _names(html: str) -> set[str]:
    main = text_of(main_html(html))
    return {name for name in NAMES if name in main}


def _get(client, url, status=200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def test_the_staff_home_counts_client_users_by_invitation_state(browser_client, config, states):
    world = states
    login(browser_client, config, world.ana)
    counts = _counts(_get(browser_client, f"/e/{world.alfa.slug}/"))
    assert {k: (n, label) for k, (n, label, _href) in counts.items()} == {
        "aguardando": (1, "Aguardando envio"), "enviado": (1, "Convite enviado"),
        "falha": (2, "Falha no envio"),  # the notifier still retrying, and a permanent refusal
        "expirado": (1, "Convite expirado"), "ativo": (1, "Acesso ativo")}
    assert list(counts) == list(KEYS)  # in the order an invitation goes through


def test_the_counts_agree_with_each_users_state_on_the_list(config, states):
    """The database's counts are the states the list shows one by one (queries.invitation_state)."""
    world = states
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        by_code = {}
        for cu in s.scalars(select(models.ClientUser).where(models.ClientUser.firm_id == alfa.id)):
            code = queries.invitation_state(cu).code
            by_code[code] = by_code.get(code, 0) + 1
        counts = queries.invitation_state_counts(s, firm=alfa)
    assert counts == {key: sum(by_code.get(code, 0) for code in codes)
                      for key, codes in queries.STATE_FILTERS.items()}
    assert by_code[None] == 3  # never invited, deactivated, deleted: in no count


def test_each_count_links_to_the_list_filtered_to_that_state(browser_client, config, states):
    world = states
    login(browser_client, config, world.ana)
    counts = _counts(_get(browser_client, f"/e/{world.alfa.slug}/"))
    expected = {"aguardando": {"Wanda Espera"}, "enviado": {"Sérgio Enviado"},
                "falha": {"Regina Repete", "Fausto Falha"}, "expirado": {"Expedito Vencido"},
                "ativo": {"Carlos Souza"}}
    for key, (n, label, href) in counts.items():
        assert href == LIST.format(slug=world.alfa.slug) + f"?estado={key}"
        html = _get(browser_client, href)
        assert _names(html) == expected[key] and len(expected[key]) == n, key
        main = text_of(main_html(html))
        assert f"Situação: {label} Remover filtro" in main, key  # the filter is shown, and removable
        assert re.search(rf'<option value="{key}" selected>', html), key  # and kept by the search form
        remove = re.search(r'id="filtro-situacao">.*?<a href="([^"]+)"', html, re.S).group(1)
        assert remove == LIST.format(slug=world.alfa.slug)
        everyone = _names(_get(browser_client, remove))
        assert everyone == set(NAMES) - {"Ester Excluída"}


def test_the_state_filter_combines_with_the_search_pages_and_export(browser_client, config, world):
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        for i in range(55):  # more than a page waiting for their invitation
            services.register_client_user(s, firm=alfa, name=f"Pessoa Espera {i:02d}",
                                          email=f"espera{i}@example.com", access="now")
        services.register_client_user(s, firm=alfa, name="Pessoa Sem Convite", email="sem@example.com")
    login(browser_client, config, world.ana)
    url = LIST.format(slug=world.alfa.slug)
    first = _get(browser_client, url + "?estado=aguardando")
    assert first.count("Pessoa Espera") == 50 and "Carlos Souza" not in first
    following = re.search(r'<a href="([^"]+)">Próxima ›</a>', first).group(1).replace("&amp;", "&")
    assert "estado=aguardando" in following
    second = text_of(main_html(_get(browser_client, following)))
    assert second.count("Pessoa Espera") == 5 and "Pessoa Sem Convite" not in second
    searched = text_of(main_html(_get(browser_client, url + "?estado=aguardando&q=espera+0")))
    assert re.findall(r"Pessoa Espera \d\d", searched) == [f"Pessoa Espera 0{i}" for i in range(10)]
    assert "Nenhum usuário encontrado" in _get(browser_client, url + "?estado=ativo&q=espera")
    # Exportar CSV exports what the filtered list shows
    export = re.search(r'<a class="button secondary" href="([^"]+exportar.csv[^"]*)"', first).group(1)
    rows = list(csv.reader(io.StringIO(_get(browser_client, export.replace("&amp;", "&")).lstrip("\ufeff")),
                           delimiter=";"))
    assert len(rows) == 1 + 55 and all(row[0].startswith("Pessoa Espera") for row in rows[1:])


@pytest.mark.parametrize("estado", ["desconhecido", "ATIVO", "ativo'--", "a" * 300, "\x00"])
def test_an_unknown_state_lists_everyone_and_says_so(browser_client, config, states, estado):
    world = states
    login(browser_client, config, world.ana)
    url = LIST.format(slug=world.alfa.slug)
    response = browser_client.get(url, query_string={"estado": estado})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _names(html) == set(NAMES) - {"Ester Excluída"}
    assert "A situação pedida no endereço não existe: mostrando todos os usuários." in text_of(html)
    assert 'id="filtro-situacao"' not in html
    # the rest of the address still applies
    searched = browser_client.get(url, query_string={"estado": estado, "q": "falha"}).get_data(as_text=True)
    assert _names(searched) == {"Fausto Falha"}


def test_a_colaborador_counts_and_filters_only_the_carteira(browser_client, config, states, paula):
    world = states
    login(browser_client, config, paula)
    html = _get(browser_client, f"/e/{world.alfa.slug}/")
    counts = _counts(html)
    # Padaria's users: Carlos (active), Wanda (waiting), Sérgio (sent), Fausto (failed); Mercado
    # Central's (Regina retrying, Expedito expired) are outside the carteira
    assert {k: n for k, (n, _label, _href) in counts.items()} == {
        "aguardando": 1, "enviado": 1, "falha": 1, "expirado": 0, "ativo": 1}
    assert "Contados entre os usuários das empresas da sua carteira." in text_of(html)
    assert _names(_get(browser_client, counts["falha"][2])) == {"Fausto Falha"}
    assert _names(_get(browser_client, counts["expirado"][2])) == set()
    login(browser_client, config, world.ana)  # the Administrador counts everyone, without the note
    html = _get(browser_client, f"/e/{world.alfa.slug}/")
    assert _counts(html)["expirado"][0] == 1 and "sua carteira" not in html


def test_a_client_sees_no_counts(browser_client, config, states):
    world = states
    login(browser_client, config, world.carlos)
    html = _get(browser_client, f"/e/{world.alfa.slug}/")
    assert "situacao-convites" not in html and "Aguardando envio" not in html


def test_the_counts_cost_one_statement_whatever_the_number_of_users(browser_client, config, world, paula):
    url = f"/e/{world.alfa.slug}/"
    for who in (world.ana, paula):
        login(browser_client, config, who)
        browser_client.get(url)
        with count_queries(config, "users") as few:
            assert browser_client.get(url).status_code == 200
        with users_db(config).begin() as s:
            alfa = s.get(models.Firm, world.alfa.id)
            for i in range(30):
                _register(s, alfa, f"Zé{uuid.uuid4().hex[:8]} Contado{i}", company_ids=[world.alfa_company.id],
                          access="now" if i % 2 else None)
        with count_queries(config, "users") as many:
            html = browser_client.get(url).get_data(as_text=True)
        assert few.count == many.count
        assert _counts(html)["aguardando"][0] >= 15


def test_the_counts_and_the_filter_in_english(browser_client, config, states):
    from services.users.tests.test_pages import _compile_english_catalogue
    _compile_english_catalogue()
    world = states
    login(browser_client, config, world.ana)
    browser_client.set_cookie("balcao_locale", "en")
    counts = _counts(_get(browser_client, f"/e/{world.alfa.slug}/"))
    assert [label for _n, label, _href in counts.values()] == [
        "Waiting to be sent", "Invitation sent", "Sending failed", "Invitation expired", "Access active"]
    main = text_of(main_html(_get(browser_client, counts["expirado"][2])))
    assert "Status: Invitation expired Remove filter on status" in main
    main = text_of(main_html(_get(browser_client, LIST.format(slug=world.alfa.slug) + "?estado=nenhum")))
    assert "The status asked for in the address does not exist: showing every user." in main

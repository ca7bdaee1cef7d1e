"""The client's home, the firm selector in the header, and the page auth redirects to after linking."""
import re
import uuid
from datetime import UTC

from services.users import models, services
from services.users.tests.conftest import Person, link_client, login, main_html, make_cnpj, text_of, users_db
from testsupport import count_queries


def _options(html):
    form = re.search(r'<form class="firm-selector".*?</form>', html, re.S)
    if not form:
        return None
    return re.findall(r'<option value="([^"]+)"( selected)?>([^<]+)</option>', form.group(0))


def test_anonymous_goes_to_login(browser_client, world):
    response = browser_client.get("/")
    assert response.status_code in (302, 303) and response.headers["Location"].startswith("/auth/entrar")
    response = browser_client.get(f"/e/{world.alfa.slug}/")
    assert response.headers["Location"] == f"/auth/entrar?next=/e/{world.alfa.slug}/"


def test_a_person_without_firms_is_told_so(browser_client, config, world):
    login(browser_client, config, Person(uuid.uuid4(), "nova@example.com", "Nova Pessoa"))
    response = browser_client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Você ainda não tem acesso a nenhum escritório." in html and _options(html) is None


def test_client_home_shows_only_this_firms_companies(browser_client, config, world):
    login(browser_client, config, world.carlos)
    response = browser_client.get("/")
    assert response.status_code == 303 and response.headers["Location"] == f"/e/{world.alfa.slug}/"
    html = browser_client.get(f"/e/{world.beta.slug}/").get_data(as_text=True)
    main = main_html(html)
    assert "Contabilidade Beta" in main and "Empresas" in main and "Oficina Motor Forte Ltda" in main
    for other in ("Alfa", "Padaria Pão Quente", "Mercado Central"):
        assert other not in main
    assert "Configurações" not in main
    html = browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True)
    main = main_html(html)
    assert "Padaria Pão Quente Ltda" in main and "Mercado Central" not in main  # only the company he may see
    assert "Oficina" not in main


def test_staff_home_links_to_client_users(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True)
    assert "Configurações › Usuários de Clientes" in html
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central Ltda" in html
    assert browser_client.get(f"/e/{world.beta.slug}/").status_code == 404


def test_selector_lists_every_firm_of_this_login_and_switches(browser_client, config, world):
    login(browser_client, config, world.carlos)
    html = browser_client.get(f"/e/{world.beta.slug}/").get_data(as_text=True)
    assert '<label for="firm-select">Escritório</label>' in html
    assert '<select id="firm-select" name="escritorio" data-autosubmit>' in html
    assert "<noscript>" in html and ">Ir<" in html
    assert _options(html) == [(world.alfa.slug, "", "Contabilidade Alfa"),
                              (world.beta.slug, " selected", "Contabilidade Beta")]
    response = browser_client.get(f"/trocar-escritorio?escritorio={world.beta.slug}")
    assert response.status_code == 303 and response.headers["Location"] == f"/e/{world.beta.slug}/"
    cookie = response.headers["Set-Cookie"]
    assert "balcao_firm=" + world.beta.slug in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert browser_client.get("/").headers["Location"] == f"/e/{world.beta.slug}/"  # remembered
    assert browser_client.get("/trocar-escritorio?escritorio=nao-existe").status_code == 404
    assert browser_client.get("/trocar-escritorio").status_code == 404


def test_staff_selector_lists_only_their_firm(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True)
    assert _options(html) == [(world.alfa.slug, " selected", "Contabilidade Alfa")]
    assert browser_client.get(f"/trocar-escritorio?escritorio={world.beta.slug}").status_code == 404


def test_deactivation_removes_the_firm_at_once(browser_client, config, world):
    login(browser_client, config, world.carlos)
    browser_client.get(f"/trocar-escritorio?escritorio={world.alfa.slug}")
    with users_db(config).begin() as s:
        services.deactivate_client_user(s, firm=world.alfa,
                                        client_user=s.get(models.ClientUser, world.carlos_at_alfa.id))
    assert browser_client.get(f"/e/{world.alfa.slug}/").status_code == 404
    html = browser_client.get(f"/e/{world.beta.slug}/").get_data(as_text=True)
    assert _options(html) == [(world.beta.slug, " selected", "Contabilidade Beta")]
    # the remembered firm is gone: the home falls back to one he still has
    assert browser_client.get("/").headers["Location"] == f"/e/{world.beta.slug}/"
    assert browser_client.get(f"/trocar-escritorio?escritorio={world.alfa.slug}").status_code == 404


def test_home_query_count_does_not_grow_with_firms_or_companies(browser_client, config, world):
    login(browser_client, config, world.carlos)
    url = f"/e/{world.alfa.slug}/"
    browser_client.get(url)
    with count_queries(config, "users") as few:
        assert browser_client.get(url).status_code == 200
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        companies = [services.create_company(s, firm=alfa, name=f"Empresa {i}", cnpj=make_cnpj(700 + i))
                     for i in range(10)]
        carlos_at_alfa = s.get(models.ClientUser, world.carlos_at_alfa.id)
        carlos_at_alfa.companies.extend(companies)
        extra = []
        for i in range(5):
            firm = services.create_firm(s, name=f"Escritório {i}", cnpj=make_cnpj(800 + i),
                                        admin_identity_id=uuid.uuid4(), admin_name="Admin Fulano",
                                        admin_email=f"admin{i}@example.com")
            extra.append(services.register_client_user(s, firm=firm, name="Carlos Souza",
                                                       email="carlos@example.com", access="now"))
    for cu in extra:
        link_client(config, firm_id=cu.firm_id, client_user_id=cu.id, identity_id=world.carlos.identity_id)
    with count_queries(config, "users") as many:
        html = browser_client.get(url).get_data(as_text=True)
    assert len(_options(html)) == 7 and "Empresa 9" in html
    assert few.count == many.count


def test_linking_page_waits_then_goes_to_the_firm(browser_client, config, world):
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=world.alfa, name="Diana Prado", email="diana@example.com",
                                           access="now")
    diana = Person(uuid.uuid4(), "diana@example.com", "Diana Prado")
    invitation_id = uuid.uuid4()
    url = f"/vinculando/{invitation_id}"
    assert browser_client.get(url).headers["Location"] == f"/auth/entrar?next={url}"
    login(browser_client, config, diana)
    response = browser_client.get(url)  # invitation.created not seen yet
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Vinculando contas…" in html
    assert '<meta http-equiv="refresh" content="1">' in html and "<script>" not in html
    from datetime import datetime, timedelta
    with users_db(config).begin() as s:
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=world.alfa.id,
                                           client_user_id=cu.id,
                                           expires_at=datetime.now(UTC) + timedelta(days=7))
    assert "Vinculando contas…" in browser_client.get(url).get_data(as_text=True)
    with users_db(config).begin() as s:
        services.grant_membership(s, firm_id=world.alfa.id, client_user_id=cu.id, identity_id=diana.identity_id,
                                  invitation_id=invitation_id)
    response = browser_client.get(url)
    assert response.status_code == 303 and response.headers["Location"] == f"/e/{world.alfa.slug}/"
    html = browser_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Contas vinculadas. Agora você também acessa Contabilidade Alfa." in html
    # someone else following the same address
    login(browser_client, config, world.carlos)
    assert browser_client.get(url).status_code == 404


def test_linking_page_explains_a_refused_link(browser_client, config, world):
    from datetime import datetime, timedelta
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=world.beta, name="Diana Prado", email="diana@example.com",
                                           access="now")
        invitation_id = uuid.uuid4()
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=world.beta.id,
                                           client_user_id=cu.id,
                                           expires_at=datetime.now(UTC) + timedelta(days=7))
        services.record_link_refused(s, invitation_id=invitation_id, firm_id=world.beta.id, client_user_id=cu.id,
                                     reason="expired")
    login(browser_client, config, Person(uuid.uuid4(), "diana@example.com", "Diana Prado"))
    html = text_of(browser_client.get(f"/vinculando/{invitation_id}").get_data(as_text=True))
    assert "O convite de Contabilidade Beta expirou." in html and "Peça um novo convite ao escritório." in html
    assert "Vinculando" not in html


def _beta_invitation_for_diana(config, world):
    from datetime import datetime, timedelta
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=world.beta, name="Diana Prado", email="diana@example.com",
                                           access="now")
        invitation_id = uuid.uuid4()
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=world.beta.id,
                                           client_user_id=cu.id,
                                           expires_at=datetime.now(UTC) + timedelta(days=7))
    return cu, invitation_id


def test_linking_page_of_someone_elses_invitation_is_404(browser_client, config, world):
    cu, invitation_id = _beta_invitation_for_diana(config, world)
    url = f"/vinculando/{invitation_id}"
    # addressed to Diana (the session's e-mail is compared normalized): she waits for the link
    login(browser_client, config, Person(uuid.uuid4(), "Diana@Example.com", "Diana Prado"))
    assert "Vinculando contas…" in browser_client.get(url).get_data(as_text=True)
    # a client of another firm, and staff of another firm, get a plain 404 that never names Beta
    for person in (world.carlos, world.ana):
        login(browser_client, config, person)
        response = browser_client.get(url)
        assert response.status_code == 404 and "Beta" not in response.get_data(as_text=True)
    # once superseded by a newer invitation, Diana is told it is no longer valid; the others still get 404
    from datetime import datetime, timedelta
    with users_db(config).begin() as s:
        services.record_invitation_created(s, invitation_id=uuid.uuid4(), firm_id=world.beta.id,
                                           client_user_id=cu.id,
                                           expires_at=datetime.now(UTC) + timedelta(days=7))
    for person in (world.carlos, world.ana):
        login(browser_client, config, person)
        response = browser_client.get(url)
        assert response.status_code == 404 and "Beta" not in response.get_data(as_text=True)
    login(browser_client, config, Person(uuid.uuid4(), "diana@example.com", "Diana Prado"))
    response = browser_client.get(url)
    assert response.status_code == 409
    assert "O convite de Contabilidade Beta não está mais válido." in text_of(response.get_data(as_text=True))


def test_linking_page_gives_up_on_an_invitation_it_never_hears_of(browser_client, config, world, monkeypatch):
    from services.users.views import home as views
    clock = [1_000_000.0]
    monkeypatch.setattr(views, "_now", lambda: clock[0])
    login(browser_client, config, world.carlos)
    url = f"/vinculando/{uuid.uuid4()}"
    message = "Não encontramos este convite. Abra de novo o link do e-mail ou peça um novo convite ao escritório."
    response = browser_client.get(url)
    assert response.status_code == 200 and '<meta http-equiv="refresh" content="1">' in response.get_data(as_text=True)
    clock[0] += 59
    response = browser_client.get(url)
    assert response.status_code == 200 and "Vinculando contas…" in response.get_data(as_text=True)
    clock[0] += 1
    response = browser_client.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and message in text_of(html)
    assert 'http-equiv="refresh"' not in html and "Vinculando contas…" not in html
    # another invitation gets its own minute
    response = browser_client.get(f"/vinculando/{uuid.uuid4()}")
    assert response.status_code == 200 and "Vinculando contas…" in response.get_data(as_text=True)


def test_linking_page_keeps_waiting_when_the_invitation_arrives_late(browser_client, config, world, monkeypatch):
    from datetime import datetime, timedelta

    from services.users.views import home as views
    clock = [1_000_000.0]
    monkeypatch.setattr(views, "_now", lambda: clock[0])
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=world.alfa, name="Diana Prado", email="diana@example.com",
                                           access="now")
    login(browser_client, config, Person(uuid.uuid4(), "diana@example.com", "Diana Prado"))
    invitation_id = uuid.uuid4()
    url = f"/vinculando/{invitation_id}"
    assert browser_client.get(url).status_code == 200
    clock[0] += 30
    with users_db(config).begin() as s:
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=world.alfa.id,
                                           client_user_id=cu.id,
                                           expires_at=datetime.now(UTC) + timedelta(days=7))
    clock[0] += 600  # known and addressed to her: the link itself is what she waits for
    response = browser_client.get(url)
    assert response.status_code == 200 and "Vinculando contas…" in response.get_data(as_text=True)

"""The client's home (where a link lands): its companies in one statement, not the client user's
whole row and then its companies."""
from services.users.tests.conftest import login
from testsupport import count_queries


def test_client_home_reads_its_companies_in_one_statement(browser_client, config, world):
    login(browser_client, config, world.carlos)
    url = f"/e/{world.alfa.slug}/"
    browser_client.get(url)
    with count_queries(config, "users") as counted:
        html = browser_client.get(url).get_data(as_text=True)
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central" not in html
    # the ended-session check, the login's memberships, the companies, the selector's unread counts
    assert counted.count == 4, counted.statements

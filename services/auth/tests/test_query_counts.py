"""The pages auth serves on every invitation and login cost a fixed, small number of queries,
however many identities exist."""
from urllib.parse import quote

from services.auth import services
from testsupport import count_queries, csrf_token

from .conftest import CARLOS


def _crowd(auth_db, n):
    with auth_db.begin() as s:
        for i in range(n):
            # Rows inserted directly with a dummy hash: hashing 30 passwords would only slow the test.
            identity = services.Identity(email=f"pessoa{i}@exemplo.com.br", name=f"Pessoa {i}",
                                         password_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")
            s.add(identity)


def _measure(browser_client, config, ticket):
    with count_queries(config, "auth") as invite:
        html = browser_client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)
    with count_queries(config, "auth") as login:
        browser_client.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": CARLOS["email"],
                                                  "password": "senha-errada-123"})
    # The attempt counters (auth_counters, or Redis when configured) are measured on their own:
    # a new rate-limit window adds one sweep, so they vary with the clock, not with the rows.
    store = [q for q in login.statements if "auth_counters" in q]
    assert len(store) <= 8
    return invite.count, login.count - len(store)


def test_invitation_and_login_query_counts_do_not_grow(browser_client, config, auth_db, make_identity,
                                                       make_ticket):
    make_identity(CARLOS)
    ticket, _ = make_ticket()
    few = _measure(browser_client, config, ticket)
    _crowd(auth_db, 30)
    many = _measure(browser_client, config, ticket)
    assert few == many
    assert few[0] <= 2 and few[1] <= 3

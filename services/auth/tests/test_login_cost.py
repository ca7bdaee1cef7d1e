"""A successful login or Vincular Contas costs a fixed, small number of SQL statements and
transactions on the auth database: the throttle's bookkeeping (rate-limit hit, IP block, account
lock) is one transaction before the password check; the check, its event and the new session
commit together in one more (the success reset, when a failure was recorded, in that one too);
and no signed cookie is verified twice in a request."""
from urllib.parse import quote

from sqlalchemy import event

from services.common.keys import KeyRing
from services.common.runtime import database
from testsupport import count_queries, csrf_token

from .conftest import BETA, CARLOS, new_browser


class _Transactions:
    """Counts the transactions begun on auth's database; `statements`: (transaction number, SQL)."""

    def __init__(self, config):
        self.engine = database("auth", config).engine
        self.count = 0
        self.statements: list[tuple[int, str]] = []

    def _begin(self, conn):
        self.count += 1

    def _statement(self, conn, cursor, statement, *args):
        self.statements.append((self.count, statement))

    def __enter__(self):
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)

    def transaction_of(self, fragment: str) -> int:
        [number] = {n for n, sql in self.statements if fragment in sql}
        return number


def _post_login(client, password):
    html = client.get("/auth/entrar").get_data(as_text=True)
    return client.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": CARLOS["email"],
                                             "password": password})


def _measured_login(config, client, password):
    with count_queries(config, "auth") as queries, _Transactions(config) as transactions:
        response = _post_login(client, password)
    # On PostgreSQL the outbox also sends a NOTIFY at commit (services/common/messaging): the
    # broker relay's wake-up, not a query of the login
    statements = [s for s in queries.statements if not s.lstrip().upper().startswith("NOTIFY")]
    return response, statements, transactions.count


def test_a_successful_login_runs_few_statements(config, make_identity, clock):
    make_identity()
    client, _apps = new_browser(config)
    # a first request opens this minute's rate-limit window (whose first hit also sweeps old counters)
    assert _post_login(client, "senha-errada-123").status_code == 422
    other, _apps = new_browser(config, ip="10.0.0.9")  # another IP: no failure counted against it
    assert _post_login(other, "senha-errada-123").status_code == 422
    _post_login(other, CARLOS["password"])  # resets the account's failures: nothing left to reset
    other, _apps = new_browser(config, ip="10.0.0.9")
    response, statements, transactions = _measured_login(config, other, CARLOS["password"])
    assert response.status_code == 303
    # rate-limit hit + lock/IP check, identity lookup, staff-MFA check, session insert, login event
    assert len(statements) <= 6, statements
    assert transactions <= 2  # the throttle's gate; the check with the session and its event
    assert not any(s.lstrip().upper().startswith("DELETE") for s in statements), statements


def test_after_a_failure_the_reset_shares_the_session_transaction(config, make_identity, clock):
    make_identity()
    client, _apps = new_browser(config)
    assert _post_login(client, "senha-errada-123").status_code == 422
    response, statements, transactions = _measured_login(config, client, CARLOS["password"])
    assert response.status_code == 303
    deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 1 and "auth_counters" in deletes[0]
    assert len(statements) <= 7, statements
    assert transactions <= 2


def _link_page(client, ticket):
    return client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)


def test_a_link_commits_its_event_and_session_in_one_transaction(config, make_identity, make_ticket, clock):
    make_identity()
    client, _apps = new_browser(config)
    ticket, claims = make_ticket(firm=BETA)
    # a first request opens this minute's rate-limit window (whose first hit also sweeps old counters)
    assert _post_login(client, CARLOS["password"]).status_code == 303
    html = _link_page(client, ticket)
    with _Transactions(config) as transactions:
        response = client.post("/auth/convite/vincular", data={
            "csrf_token": csrf_token(html), "ticket": ticket, "password": CARLOS["password"]})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/vinculando/{claims['inv']}")
    # not counted: PostgreSQL's NOTIFY at commit (the relay's wake-up), and the sweep of expired
    # counters that the first hit of a new rate-limit window does
    statements = [sql for _n, sql in transactions.statements
                  if not sql.lstrip().upper().startswith(("NOTIFY", "DELETE FROM AUTH_COUNTERS"))]
    # read session: invitation state, identity; gate: rate-limit hit + lock/IP check; one
    # transaction: link.verified, staff-MFA check, session insert, identity.logged_in
    assert len(statements) <= 8, "\n".join(sql[:90] for sql in statements)
    assert transactions.count <= 3
    assert transactions.transaction_of("INSERT INTO outbox") == transactions.transaction_of("INSERT INTO auth_sessions")
    assert sum("FROM identities" in sql for sql in statements) == 1  # the identity is read once


class _Verifications:
    """Counts the signed tokens (cookies, tickets) a request checks the signature of."""

    def __init__(self, monkeypatch):
        self.audiences: list[str] = []
        original = KeyRing.verify

        def verify(keyring, issuer, token, *, audience, **kw):
            if token:
                self.audiences.append(audience)
            return original(keyring, issuer, token, audience=audience, **kw)
        monkeypatch.setattr(KeyRing, "verify", verify)


def test_a_login_checks_each_signed_cookie_once(config, make_identity, clock, monkeypatch):
    make_identity()
    client, _apps = new_browser(config)
    assert _post_login(client, CARLOS["password"]).status_code == 303  # now a session and a device cookie
    html = client.get("/auth/entrar").get_data(as_text=True)
    verifications = _Verifications(monkeypatch)
    response = client.post("/auth/entrar", data={"csrf_token": csrf_token(html), "email": CARLOS["email"],
                                                 "password": CARLOS["password"]})
    assert response.status_code == 303
    # the old session cookie (CSRF binding) and the device cookie (throttle, sign-in): once each; the
    # new session token issued in this request is not checked again when the CSRF secret follows it
    assert sorted(verifications.audiences) == ["balcao-device", "balcao-session"], verifications.audiences

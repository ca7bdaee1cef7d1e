"""A successful login costs a fixed, small number of SQL statements and transactions on the auth
database: the throttle's bookkeeping (rate-limit hit, IP block, account lock) is one transaction
before the password check, and its success reset is skipped when no failure was recorded, or done
in the transaction that records the session."""
from sqlalchemy import event

from services.common.runtime import database
from testsupport import count_queries, csrf_token

from .conftest import CARLOS, new_browser


class _Transactions:
    def __init__(self, config):
        self.engine = database("auth", config).engine
        self.count = 0

    def _begin(self, conn):
        self.count += 1

    def __enter__(self):
        event.listen(self.engine, "begin", self._begin)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "begin", self._begin)


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
    assert transactions <= 4
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
    assert transactions <= 4

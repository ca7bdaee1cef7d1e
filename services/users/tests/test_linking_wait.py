"""The waiting page after [Vincular Contas] waits server-side for the link (a short long poll):
it answers with the firm's home within the same request once users has granted the membership,
the waiting page after LINK_WAIT_SECONDS, and at once when enough requests are already waiting."""
import contextlib
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.users import services
from services.users.tests.conftest import Person, login, users_db
from services.users.views import home as views
from testsupport import count_queries

DIANA = ("diana@example.com", "Diana Prado")


@pytest.fixture
def worker_db(config):
    """The users database through an engine of its own, as the users worker (another process)
    has: the web app's pool then holds only the request's connections."""
    from services.common.db import Database
    database = Database(users_db(config).url, service="users")
    yield database
    database.dispose()


@pytest.fixture
def diana(config, world):
    """Diana, a client user of Alfa with access "now", and her login (not linked yet)."""
    with users_db(config).begin() as s:
        cu = services.register_client_user(s, firm=world.alfa, name=DIANA[1], email=DIANA[0], access="now")
    return cu, Person(uuid.uuid4(), *DIANA)


def _invitation_created(database, world, cu, invitation_id) -> None:
    with database.begin() as s:
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=world.alfa.id,
                                           client_user_id=cu.id, expires_at=datetime.now(UTC) + timedelta(days=7))


def _granted(database, world, cu, person, invitation_id) -> None:
    with database.begin() as s:
        assert services.grant_membership(s, firm_id=world.alfa.id, client_user_id=cu.id,
                                         identity_id=person.identity_id, invitation_id=invitation_id)


def _later(seconds: float, *steps) -> threading.Thread:
    """Run `steps` in another thread after `seconds` (the users worker, committing meanwhile)."""
    def run():
        time.sleep(seconds)
        for step in steps:
            step()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def sleeps(config, monkeypatch):
    """Each pause of the long poll, with how many connections of the users database were checked
    out at that moment (none may be: neither the request's session nor a check holds one)."""
    engine = users_db(config).engine
    seen: list[int] = []

    def sleep(seconds):
        seen.append(engine.pool.checkedout())
        time.sleep(seconds)

    monkeypatch.setattr(views, "_sleep", sleep)
    return seen


def _waiting_page(browser_client, config, world, diana, worker_db) -> tuple[str, uuid.UUID]:
    """Diana logged in, her invitation known to users, not linked yet: her waiting page's URL."""
    cu, person = diana
    invitation_id = uuid.uuid4()
    _invitation_created(worker_db, world, cu, invitation_id)
    login(browser_client, config, person)
    return f"/vinculando/{invitation_id}", invitation_id


@contextlib.contextmanager
def _every_waiter_place_taken():
    taken = [views._link_waiters.acquire(blocking=False) for _ in range(views.LINK_WAITERS)]
    try:
        assert all(taken)
        yield
    finally:
        for _ in taken:
            views._link_waiters.release()


def _get(client, url):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


@pytest.mark.parametrize("known", [True, False], ids=["invitation-known", "invitation-in-flight"])
def test_the_home_comes_within_the_same_request_once_the_membership_is_granted(
        browser_client, config, world, diana, sleeps, known, worker_db, monkeypatch):
    monkeypatch.setattr(views, "LINK_WAIT_SECONDS", 10.0)  # a loaded machine's slow commit still comes within
    cu, person = diana
    invitation_id = uuid.uuid4()
    if known:
        _invitation_created(worker_db, world, cu, invitation_id)
    login(browser_client, config, person)
    steps = [] if known else [lambda: _invitation_created(worker_db, world, cu, invitation_id)]
    worker = _later(0.3, *steps, lambda: _granted(worker_db, world, cu, person, invitation_id))
    response, took = _get(browser_client, f"/vinculando/{invitation_id}")
    worker.join(5)
    assert response.status_code == 303 and response.headers["Location"] == f"/e/{world.alfa.slug}/"
    assert 0.3 <= took < 5  # answered when the grant came, not at the cap
    assert sleeps and set(sleeps) == {0}  # nothing held while waiting
    html = browser_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Contas vinculadas. Agora você também acessa Contabilidade Alfa." in html


def test_a_refusal_meanwhile_is_answered_within_the_same_request(browser_client, config, world, diana, sleeps,
                                                                  worker_db, monkeypatch):
    monkeypatch.setattr(views, "LINK_WAIT_SECONDS", 10.0)
    cu, person = diana
    invitation_id = uuid.uuid4()
    _invitation_created(worker_db, world, cu, invitation_id)
    login(browser_client, config, person)

    def refused():
        with worker_db.begin() as s:
            services.record_link_refused(s, invitation_id=invitation_id, firm_id=world.alfa.id,
                                         client_user_id=cu.id, reason="expired")

    worker = _later(0.2, refused)
    response, took = _get(browser_client, f"/vinculando/{invitation_id}")
    worker.join(5)
    assert response.status_code == 409 and "expirou" in response.get_data(as_text=True)
    assert 0.2 <= took < 5


def test_nothing_happens_the_waiting_page_after_the_cap_one_statement_per_check(
        browser_client, config, world, diana, sleeps, monkeypatch, worker_db):
    monkeypatch.setattr(views, "LINK_WAIT_SECONDS", 0.3)
    url, _invitation_id = _waiting_page(browser_client, config, world, diana, worker_db)
    browser_client.get(url)  # warm
    sleeps.clear()
    # what the page costs without waiting (every waiter's place taken: it answers at once)
    with _every_waiter_place_taken(), count_queries(config, "users") as at_once:
        response = browser_client.get(url)
    assert response.status_code == 200 and sleeps == []  # answered without waiting
    with count_queries(config, "users") as waited:
        response, took = _get(browser_client, url)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Vinculando contas…" in html
    assert '<meta http-equiv="refresh" content="1">' in html  # still refreshes: a longer chain ends well
    assert took >= 0.3
    # each check: one statement (link_progress), about every LINK_CHECK_INTERVAL
    assert len(sleeps) >= 5 and set(sleeps) == {0}
    assert waited.count == at_once.count + len(sleeps)


def test_the_waiter_cap_answers_at_once(browser_client, config, world, diana, sleeps, worker_db, monkeypatch):
    monkeypatch.setattr(views, "LINK_WAIT_SECONDS", 10.0)
    cu, person = diana
    url, invitation_id = _waiting_page(browser_client, config, world, diana, worker_db)
    assert 1 <= views.LINK_WAITERS <= max(1, views.WEB_THREADS // 2)
    with _every_waiter_place_taken():
        response = browser_client.get(url)
        assert response.status_code == 200 and "Vinculando contas…" in response.get_data(as_text=True)
        assert sleeps == []  # answered without waiting
    # a place free again: the next request waits (and gets the grant that came meanwhile)
    worker = _later(0.2, lambda: _granted(worker_db, world, cu, person, invitation_id))
    response = browser_client.get(url)
    worker.join(5)
    assert response.status_code == 303 and sleeps


def test_concurrent_waiters_beyond_the_cap_answer_at_once(config, world, diana, monkeypatch, worker_db):
    """LINK_WAITERS requests wait at once; one more answers at once (threads of one process, as
    gunicorn's gthread worker runs them)."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from testsupport.helpers import build_gateway
    monkeypatch.setattr(views, "LINK_WAIT_SECONDS", 0.6)
    sleeping: set[int] = set()

    def sleep(seconds):
        sleeping.add(threading.get_ident())
        time.sleep(seconds)

    monkeypatch.setattr(views, "_sleep", sleep)
    cu, person = diana
    invitation_id = uuid.uuid4()
    _invitation_created(worker_db, world, cu, invitation_id)
    dispatcher, _apps = build_gateway(config)
    clients = [Client(dispatcher, Response, use_cookies=True) for _ in range(views.LINK_WAITERS + 1)]
    for client in clients:
        login(client, config, person)
    url = f"/vinculando/{invitation_id}"
    clients[0].get(url)  # warm
    sleeping.clear()
    took: dict[int, float] = {}

    def waiter(i):
        _response, took[i] = _get(clients[i], url)

    waiting = [threading.Thread(target=waiter, args=(i,)) for i in range(views.LINK_WAITERS)]
    for thread in waiting:
        thread.start()
    deadline = time.monotonic() + 5
    while len(sleeping) < views.LINK_WAITERS and time.monotonic() < deadline:  # every place taken
        time.sleep(0.01)
    assert len(sleeping) == views.LINK_WAITERS
    response = clients[-1].get(url)
    for thread in waiting:
        thread.join(10)
    assert response.status_code == 200 and threading.get_ident() not in sleeping  # answered without waiting
    assert all(took[i] >= 0.6 for i in range(views.LINK_WAITERS))

"""The services through PgBouncer in transaction mode (Debian's pgbouncer, testsupport/pgbouncer.py)
in front of this run's PostgreSQL: the pooling is real (many client connections, at most
pool-size server connections per database, every service's transactions counted by PgBouncer),
nothing session-level is left on the server connections the product shared, the outbox relay is
woken by NOTIFY on its own direct connection, and what transaction pooling breaks — psycopg's
server-side prepared statements — is not used.

CI's PostgreSQL pass also runs the whole distributed suite through PgBouncer
(BALCAO_TEST_PGBOUNCER=1); these tests use one whatever that variable says."""
from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import select, text

from services.common import messaging
from services.common.config import SERVICES
from services.common.db import Database, make_engine
from services.common.worker import WEB_THREADS
from services.invitations import models as inv_models
from tests.conftest import Staff, running_product, wait_until
from testsupport import backends, private_vhost
from testsupport.pgbouncer import pgbouncer_in_front_of, pool_size_for

pytestmark = pytest.mark.distributed

WEB_WORKERS, WORKER_PROCESSES = 1, {"notifier": 2, "invitations": 2}
# The README's sizing rule for this topology (4 request threads + 2 worker processes + 1): no
# stall, and still fewer server connections than the processes open client connections
POOL_SIZE = pool_size_for(WEB_WORKERS * WEB_THREADS, max(WORKER_PROCESSES.values()))


def _direct(sql: str, database: str = "postgres", **params) -> list[tuple]:
    """Rows read on a direct connection to the run's PostgreSQL server (what PostgreSQL itself sees)."""
    from sqlalchemy.engine import make_url
    url = make_url(backends().database_url.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=database)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _database_name(url: str) -> str:
    from sqlalchemy.engine import make_url
    return str(make_url(url).database)


# --------------------------------------------------------------------------- the product through the pooler

@pytest.fixture(scope="module")
def pooled_product(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("pgbouncer"), smtp_port=mailbox.port, tag="pgb", web_workers=WEB_WORKERS,
                         worker_processes=WORKER_PROCESSES, pgbouncer=True,
                         pgbouncer_pool_size=POOL_SIZE) as running:
        yield running


def test_every_process_shares_a_few_server_connections(pooled_product, mailbox):
    product, bouncer = pooled_product, pooled_product.pgbouncer
    staff = Staff(product, "pgb")
    emails = staff.invite(6)
    for address in emails:
        mailbox.wait_for(to=address, subject_contains="Contabilidade pgb", timeout=90)

    databases = {svc: _database_name(product.database_urls[svc]) for svc in SERVICES}
    total_clients = total_servers = 0
    for svc, name in databases.items():
        # every service's transactions went through PgBouncer...
        assert bouncer.stats(name).get("total_xact_count", 0) > 0, svc
        assert {row["pool_mode"] for row in bouncer.pools(name)} == {"transaction"}
        # ...onto at most POOL_SIZE server connections per database, as PostgreSQL itself counts
        # them (the relays' LISTEN connections, direct, aside: one per worker process)
        servers = bouncer.servers(name)
        assert len(servers) <= POOL_SIZE, (svc, servers)
        backends_seen = _direct("SELECT application_name FROM pg_stat_activity WHERE datname = :db", db=name)
        listening = [a for (a,) in backends_seen if a == messaging.LISTEN_APPLICATION_NAME]
        assert len(backends_seen) - len(listening) <= POOL_SIZE, (svc, backends_seen)
        assert len(listening) == product.stack.worker_processes[svc], (svc, backends_seen)
        total_clients += len(bouncer.clients(name))
        total_servers += len(servers)
    # many processes (a web and one or two workers per service, each with threads, the CLI) held
    # more client connections than PostgreSQL had server connections
    assert total_clients > total_servers, (total_clients, total_servers)


def test_no_session_state_is_left_on_the_shared_server_connections(pooled_product, mailbox):
    """After the product's work (migrations, pages, consumers, relays, the CLI): every server
    connection of every pool, taken over by one transaction each, carries no SET of a session,
    LISTEN, advisory lock or temporary table — which would leak into whoever gets it next."""
    product, bouncer = pooled_product, pooled_product.pgbouncer
    [address] = Staff(product, "pgb-state").invite(1)
    mailbox.wait_for(to=address, subject_contains="Contabilidade pgb-state", timeout=90)  # the chain at rest
    # the parameters PgBouncer itself keeps in step between client and server with SET
    tracked = {"client_encoding", "datestyle", "timezone", "standard_conforming_strings", "application_name"}
    for svc in SERVICES:
        name = _database_name(product.database_urls[svc])
        engine = make_engine(bouncer.pooled(product.database_urls[svc]))
        try:
            conns = [engine.connect() for _ in range(POOL_SIZE)]
            try:
                seen = {}
                for conn in conns:  # each holds its transaction open: together they hold the whole pool
                    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                    seen[pid] = {
                        "set": [n for (n,) in conn.execute(text("SELECT name FROM pg_settings WHERE source = 'session'"))
                                if n.lower() not in tracked],
                        "listen": [c for (c,) in conn.execute(text("SELECT pg_listening_channels()"))],
                    }
                assert len(seen) == POOL_SIZE, (svc, seen)
                assert all(state == {"set": [], "listen": []} for state in seen.values()), (svc, seen)
                assert {row["remote_pid"] for row in bouncer.servers(name)} <= set(seen), svc
            finally:
                for conn in conns:
                    conn.rollback()
                    conn.close()
        finally:
            engine.dispose()
        advisory = _direct("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                           "WHERE l.locktype = 'advisory' AND d.datname = :db", db=name)[0][0]
        temporary = _direct("SELECT count(*) FROM pg_class WHERE relpersistence = 't'", database=name)[0][0]
        assert (advisory, temporary) == (0, 0), svc


# --------------------------------------------------------------------------- one piece at a time

@pytest.fixture
def bouncer(config, tmp_path):
    with pgbouncer_in_front_of(backends().database_url, tmp_path / "pgbouncer", pool_size=2) as running:
        yield running


def test_statements_executed_many_times_survive_transaction_pooling(config, bouncer):
    """psycopg prepares a statement on the server after 5 executions; through transaction pooling
    the connection's next transaction may run on another server connection, where that prepared
    statement does not exist. Our engines never prepare: the same query, many times, on a
    connection whose transactions are made to change server connection, keeps working."""
    engine = make_engine(bouncer.pooled(config.database_url("invitations")))
    query = text("SELECT pg_backend_pid() WHERE :one = 1")
    try:
        with engine.connect() as worker, engine.connect() as other:
            pids = []
            for _ in range(8):
                pids.append(worker.execute(query, {"one": 1}).scalar())
                worker.commit()
            held = other.execute(text("SELECT pg_backend_pid()")).scalar()  # holds worker's server connection
            for _ in range(8):
                pids.append(worker.execute(query, {"one": 1}).scalar())
                worker.commit()
            other.commit()
            # the point of the exercise: the same client connection ran on both server connections
            assert len(set(pids)) == 2 and held in pids, (pids, held)
    finally:
        engine.dispose()


def _link_verified_payload():
    return {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "carlos@example.com"}


def test_the_relay_wakes_on_notify_through_its_direct_connection(config, bouncer):
    """The relay's database work goes through the pooler; its LISTEN goes direct. It never polls
    here (an hour between polls), and another engine (as the web process) writes: each event is
    published because its commit's NOTIFY reached the relay's own connection. Through the pooler
    the LISTEN would sit on a server connection handed to others, and nothing would wake it."""
    direct = config.database_url("invitations")
    writer = Database(bouncer.pooled(direct), service="invitations")
    relay_db = Database(bouncer.pooled(direct), service="invitations")
    with private_vhost(backends().broker_url) as broker:
        relay = messaging.OutboxRelay(relay_db, inv_models.outbox, broker, poll_interval=3600, listen_url=direct)
        thread = threading.Thread(target=relay.run, daemon=True)
        thread.start()
        try:
            name = _database_name(direct)
            wait_until(lambda: _direct("SELECT 1 FROM pg_stat_activity WHERE datname = :db AND application_name = :app "
                                       "AND query LIKE 'LISTEN%'", db=name, app=messaging.LISTEN_APPLICATION_NAME),
                       timeout=30, message="the relay never listened on its direct connection")

            def published(event_id):
                with writer.begin() as s:
                    return s.execute(select(inv_models.outbox.c.published_at).where(
                        inv_models.outbox.c.id == event_id)).scalar_one() is not None

            for _ in range(3):
                with writer.begin() as s:
                    envelope = messaging.record_event(s, inv_models.outbox, "link.verified", _link_verified_payload())
                wait_until(lambda envelope=envelope: published(envelope["id"]), timeout=30,
                           message="the commit's NOTIFY did not wake the relay")
        finally:
            relay.stop()
            thread.join(5)
            writer.dispose()
            relay_db.dispose()

"""pytest plugin with the fixtures every test shares (loaded from the top-level conftest).

Databases: `BALCAO_TEST_DATABASE_URL` (a PostgreSQL server URL, e.g.
postgresql://postgres@127.0.0.1:5432/postgres) gives each service a fresh database of its
own there; otherwise testcontainers starts PostgreSQL when a Docker engine answers; otherwise
each service gets a SQLite file (the embedded default). The schema is built by the services'
own Alembic migrations. Between tests every table is emptied.

`bus` delivers events in-process through the very `handle_message` the broker consumers
use, so a test can drive the whole chain without a broker; tests that need the real broker
(`BALCAO_TEST_BROKER_URL`) run the services as processes (see tests/).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
from sqlalchemy import select, text, update

from . import events
from .config import SERVICES, load_config
from .gateway import PrefixDispatcher
from .keys import ensure_keys
from .messaging import Outcome, handle_message
from .runtime import database, migrate, service_module

# --------------------------------------------------------------------------- distributed tests

DISTRIBUTED_ENV = ("BALCAO_TEST_BROKER_URL", "BALCAO_TEST_DATABASE_URL")


def distributed_env_missing() -> list[str]:
    return [name for name in DISTRIBUTED_ENV if not os.environ.get(name)]


def pytest_collection_modifyitems(config, items):
    """Tests marked `distributed` need a real RabbitMQ and PostgreSQL. Without
    BALCAO_TEST_BROKER_URL and BALCAO_TEST_DATABASE_URL they are deselected — not skipped: a skip
    would read as "ran and was fine" — and the run says so once."""
    missing = distributed_env_missing()
    if not missing:
        return
    deselected = [item for item in items if item.get_closest_marker("distributed")]
    if not deselected:
        return
    items[:] = [item for item in items if item not in deselected]
    config.hook.pytest_deselected(items=deselected)
    message = (f"deselected {len(deselected)} distributed test(s): set {' and '.join(missing)} "
               "(e.g. amqp://guest:guest@127.0.0.1:5672// and postgresql://postgres@127.0.0.1:5432/postgres) "
               "to run the services as processes against RabbitMQ and PostgreSQL")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, yellow=True)
    else:
        print(message)


# --------------------------------------------------------------------------- a private RabbitMQ vhost
# The machine's broker is shared with other test runs (and benchmarks) that consume the same
# queue names on "/": each distributed stack and broker test gets a vhost of its own.

def _rabbitmqctl(*args: str) -> bool:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    try:
        return subprocess.run([binary, *args], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def private_vhost(url: str):
    """Yields `url` moved to a fresh vhost (created with rabbitmqctl on this machine, deleted
    afterwards); yields `url` unchanged for non-AMQP URLs or when rabbitmqctl cannot do it."""
    if not url.startswith(("amqp://", "pyamqp://")):
        yield url
        return
    parts = urlsplit(url)
    user = unquote(parts.username or "guest")
    name = f"balcao-test-{uuid.uuid4().hex[:10]}"
    if not (_rabbitmqctl("add_vhost", name)
            and _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")):
        yield url
        return
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        _rabbitmqctl("delete_vhost", name)


# --------------------------------------------------------------------------- English catalogues

@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    """Compile the .po catalogues whose .mo is missing or older (build output, not committed), so
    that the suite also runs outside `make test`."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    root = Path(__file__).resolve().parents[1]
    for po in root.glob("*/translations/*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with open(po, "rb") as src:
                catalog = read_po(src)
            with open(mo, "wb") as dst:
                write_mo(dst, catalog)


def _docker_available() -> bool:
    try:
        import docker
        docker.from_env().ping()
        return True
    except Exception:
        return False


def _postgres_server_url() -> str | None:
    url = os.environ.get("BALCAO_TEST_DATABASE_URL")
    if url:
        return url
    if os.environ.get("BALCAO_TEST_NO_CONTAINERS") != "1" and _docker_available():
        from testcontainers.postgres import PostgresContainer
        container = PostgresContainer("postgres:15-alpine", driver="psycopg")
        container.start()
        import atexit
        atexit.register(container.stop)
        return container.get_connection_url()
    return None


def _fresh_postgres_databases(server_url: str, tag: str) -> dict[str, str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1)
                    if server_url.startswith("postgresql://") else server_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    urls = {}
    with admin.connect() as conn:
        for svc in SERVICES:
            name = f"balcao_{tag}_{svc}"
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            urls[svc] = base.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return urls


def make_test_config(var_dir: Path, database_urls: dict | None = None, **overrides):
    keys_dir = var_dir / "keys"
    ensure_keys(keys_dir)
    saved = {k: os.environ.get(k) for k in ("BALCAO_VAR_DIR", "BALCAO_KEYS_DIR")}
    os.environ.update(BALCAO_VAR_DIR=str(var_dir), BALCAO_KEYS_DIR=str(keys_dir))
    try:
        base = load_config()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    urls = database_urls or {svc: f"sqlite:///{var_dir / (svc + '.sqlite3')}" for svc in SERVICES}
    values = dict(var_dir=var_dir, keys_dir=keys_dir, database_urls=urls, broker_url="memory://",
                  smtp_url=None, public_url="http://balcao.test", demo=False)
    values.update(overrides)
    return dataclasses.replace(base, **values)


@pytest.fixture(scope="session")
def balcao_config(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("balcao-var")
    server = _postgres_server_url()
    urls = _fresh_postgres_databases(server, uuid.uuid4().hex[:8]) if server else None
    config = make_test_config(var_dir, urls)
    for svc in SERVICES:
        migrate(svc, config)
    yield config
    for svc in SERVICES:
        database(svc, config).dispose()
    shutil.rmtree(var_dir, ignore_errors=True)


def _empty_all_tables(config) -> None:
    for svc in SERVICES:
        metadata = service_module(svc, "models").metadata
        with database(svc, config).begin() as session:
            for table in reversed(metadata.sorted_tables):
                session.execute(table.delete())


@pytest.fixture
def config(balcao_config):
    """The test stack's configuration; every table is empty when the test starts."""
    _empty_all_tables(balcao_config)
    yield balcao_config


def db_for(config, service: str):
    return database(service, config)


class InProcessBus:
    """Carries committed outbox rows to their consumers' handlers, in-process, until quiet."""

    def __init__(self, config):
        self.config = config
        self.delivered: list[dict] = []

    def pump(self, *, max_rounds: int = 100) -> list[dict]:
        delivered_now = []
        for _ in range(max_rounds):
            moved = 0
            for svc in SERVICES:
                models = service_module(svc, "models")
                db = database(svc, self.config)
                with db.begin() as session:
                    rows = session.execute(select(models.outbox.c.seq, models.outbox.c.envelope)
                                           .where(models.outbox.c.published_at.is_(None))
                                           .order_by(models.outbox.c.seq)).all()
                    if rows:
                        session.execute(update(models.outbox)
                                        .where(models.outbox.c.seq.in_([r.seq for r in rows]))
                                        .values(published_at=models.outbox.c.created_at))
                for row in rows:
                    moved += 1
                    envelope = row.envelope
                    delivered_now.append(envelope)
                    for consumer in events.CATALOGUE[envelope["type"]][2]:
                        cmodels = service_module(consumer, "models")
                        handler = service_module(consumer, "consumers").HANDLERS[envelope["type"]]
                        outcome, info = handle_message(database(consumer, self.config), cmodels.processed,
                                                       consumer, handler, envelope, config=self.config)
                        if outcome == Outcome.INVALID:
                            raise AssertionError(f"invalid message {envelope}: {info}")
            if not moved:
                self.delivered.extend(delivered_now)
                return delivered_now
        raise AssertionError("the bus did not go quiet: an event loop between services?")

    def of_type(self, event_type: str) -> list[dict]:
        return [e for e in self.delivered if e["type"] == event_type]


class QueryCounter:
    def __init__(self):
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def count_queries(config, service: str):
    """Counts the SQL statements a block sends to one service's database."""
    from sqlalchemy import event
    engine = database(service, config).engine
    counter = QueryCounter()

    def _before(conn, cursor, statement, *args):
        counter.statements.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", _before)


def csrf_token(html: str) -> str:
    """The CSRF token of the first form of a page (tests post forms like a browser does)."""
    import re
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def bus(config):
    return InProcessBus(config)


def build_gateway(config):
    apps = {svc: service_module(svc, "app").create_app(config) for svc in SERVICES}
    for app in apps.values():
        app.config["TESTING"] = True
    return PrefixDispatcher(apps), apps


@pytest.fixture
def gateway(config):
    """All four apps on one origin, like the embedded mode and the nginx gateway."""
    dispatcher, apps = build_gateway(config)
    return dispatcher


@pytest.fixture
def browser_client(gateway, config):
    """A werkzeug test client on the one origin: cookies flow between services as in a browser."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    return Client(gateway, Response, use_cookies=True)

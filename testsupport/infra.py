"""The broker URL and the PostgreSQL server URL of a test run, and where they come from.

One rule, used by every fixture that needs real services (service tests on PostgreSQL, the
messaging tests, the distributed stack of tests/e2e, tests/faults, tests/security, tests/deploy):

1. the environment: BALCAO_TEST_BROKER_URL and/or BALCAO_TEST_DATABASE_URL, taken as given (CI
   passes the machine's RabbitMQ and PostgreSQL; one of them alone is allowed);
2. otherwise, when a Docker engine answers (and BALCAO_TEST_NO_CONTAINERS is not "1"),
   testcontainers starts a RabbitMQ and a PostgreSQL for the run;
3. otherwise none: SQLite files, the in-memory broker, and the distributed tests deselected.

Past this point nothing cares where the URLs came from: the same code creates the fresh
databases, the private vhost and the stack for both. What differs is how `rabbitmqctl` reaches
the broker's node: the local binary, or `docker exec` into the container.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_BROKER = "BALCAO_TEST_BROKER_URL"
ENV_DATABASE = "BALCAO_TEST_DATABASE_URL"
ENV_NO_CONTAINERS = "BALCAO_TEST_NO_CONTAINERS"
RABBITMQ_IMAGE = "rabbitmq:3.13-alpine"
POSTGRES_IMAGE = "postgres:15-alpine"

# `rabbitmqctl ARGS...` on the broker's node → (exit status, output)
Rabbitmqctl = Callable[..., tuple[int, str]]


def local_rabbitmqctl(*args: str) -> tuple[int, str]:
    """The rabbitmqctl of this machine (the broker of BALCAO_TEST_BROKER_URL runs here in CI)."""
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    try:
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout + done.stderr


@dataclasses.dataclass(frozen=True)
class Backends:
    source: str                        # "environment", "testcontainers" or "none"
    broker_url: str | None = None      # an AMQP URL
    database_url: str | None = None    # a PostgreSQL server URL (fresh databases are made there)
    rabbitmqctl: Rabbitmqctl = local_rabbitmqctl

    @property
    def distributed(self) -> bool:
        """Both a broker and a database server: the services can run as separate processes."""
        return bool(self.broker_url and self.database_url)

    def missing(self) -> list[str]:
        return [name for name, url in ((ENV_BROKER, self.broker_url), (ENV_DATABASE, self.database_url)) if not url]


def docker_engine_answers() -> bool:
    try:
        import docker
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def choose_source(environ: Mapping[str, str], docker_answers: Callable[[], bool]) -> str:
    """Where this run's services come from: "environment", "testcontainers" or "none"."""
    if environ.get(ENV_BROKER) or environ.get(ENV_DATABASE):
        return "environment"
    if environ.get(ENV_NO_CONTAINERS) == "1" or not docker_answers():
        return "none"
    return "testcontainers"


def start_containers() -> Backends:
    """A RabbitMQ and a PostgreSQL in containers, stopped when the test process exits."""
    import atexit

    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.rabbitmq import RabbitMqContainer
    broker = RabbitMqContainer(RABBITMQ_IMAGE)
    broker.start()
    atexit.register(broker.stop)
    database = PostgresContainer(POSTGRES_IMAGE, driver=None)
    database.start()
    atexit.register(database.stop)
    params = broker.get_connection_params()
    broker_url = f"amqp://{broker.username}:{broker.password}@{params.host}:{params.port}//"

    def in_container(*args: str) -> tuple[int, str]:
        result = broker.exec(["rabbitmqctl", *args])
        return (result.exit_code if result.exit_code is not None else 1), (result.output or b"").decode("utf-8", "replace")

    return Backends("testcontainers", broker_url, database.get_connection_url(), in_container)


def resolve_backends(environ: Mapping[str, str] | None = None, *,
                     docker_answers: Callable[[], bool] = docker_engine_answers,
                     start: Callable[[], Backends] = start_containers) -> Backends:
    """The broker URL and database server URL for this run: environment → testcontainers → none."""
    environ = os.environ if environ is None else environ
    source = choose_source(environ, docker_answers)
    if source == "environment":
        return Backends(source, environ.get(ENV_BROKER) or None, environ.get(ENV_DATABASE) or None)
    if source == "testcontainers":
        return start()
    return Backends("none")


_resolved: Backends | None = None


def backends() -> Backends:
    """This process's backends, resolved (and the containers started) once, on first use."""
    global _resolved
    if _resolved is None:
        _resolved = resolve_backends()
    return _resolved


def rabbitmqctl_for(url: str) -> Rabbitmqctl:
    """The rabbitmqctl that reaches the node of the broker at `url`."""
    if _resolved is not None and _resolved.broker_url and _same_broker(_resolved.broker_url, url):
        return _resolved.rabbitmqctl
    return local_rabbitmqctl


def _same_broker(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.hostname, pa.port) == (pb.hostname, pb.port)


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def queue_counts(url: str, rabbitmqctl: Rabbitmqctl | None = None) -> dict[str, tuple[int, int]]:
    """Every queue of the vhost of `url` → (messages ready, messages unacknowledged), as the broker
    itself counts them (`rabbitmqctl list_queues`)."""
    status, out = (rabbitmqctl or rabbitmqctl_for(url))("-q", "list_queues", "-p", vhost_of(url), "name",
                                                        "messages_ready", "messages_unacknowledged",
                                                        "--no-table-headers")
    assert status == 0, out
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            found[parts[0]] = (int(parts[1]), int(parts[2]))
    return found


# --------------------------------------------------------------------------- a private RabbitMQ vhost
# The machine's broker is shared with other test runs (and benchmarks) that consume the same
# queue names on "/": each distributed stack and broker test gets a vhost of its own.

@contextlib.contextmanager
def private_vhost(url: str, rabbitmqctl: Rabbitmqctl | None = None):
    """Yields `url` moved to a fresh vhost (created with rabbitmqctl, deleted afterwards); yields
    `url` unchanged for non-AMQP URLs or when rabbitmqctl cannot do it."""
    if not url.startswith(("amqp://", "pyamqp://")):
        yield url
        return
    ctl = rabbitmqctl or rabbitmqctl_for(url)
    parts = urlsplit(url)
    user = unquote(parts.username or "guest")
    name = f"balcao-test-{uuid.uuid4().hex[:10]}"
    if not (ctl("add_vhost", name)[0] == 0 and ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")[0] == 0):
        yield url
        return
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        ctl("delete_vhost", name)


def fresh_postgres_databases(server_url: str, tag: str, services=None) -> dict[str, str]:
    """A new, empty database per service on the PostgreSQL server (dropped first if it exists)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from services.common.config import SERVICES
    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1)
                    if server_url.startswith("postgresql://") else server_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    urls = {}
    with admin.connect() as conn:
        for svc in services or SERVICES:
            name = f"balcao_{tag}_{svc}"
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            urls[svc] = base.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return urls

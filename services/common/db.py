"""One database per service: engine + session factory, with SQLite tuned for the embedded mode."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import cast

from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Constraint and index names every service's metadata gives (Alembic needs them to alter SQLite tables).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # Safe behind a transaction-mode pooler (PgBouncer), where consecutive transactions of one
    # connection may run on different server connections:
    # * prepare_threshold=None: psycopg never makes server-side prepared statements (by default it
    #   prepares a query after 5 executions, and the next transaction, on another server
    #   connection, fails with "prepared statement does not exist"; PgBouncer < 1.21 — Debian 12
    #   has 1.18 — cannot track them);
    # * nothing session-level anywhere in the services: SET LOCAL only, no advisory locks, no
    #   temporary tables, no WITH HOLD cursors; the outbox relay LISTENs on a connection of its own
    #   (Config.database_listen_url), never through this engine;
    # * pool_pre_ping's SELECT 1 (autocommit: a transaction of its own) checks at checkout that the
    #   pooler answers and lends a server connection; stale server connections are the pooler's
    #   own business (PgBouncer's server_check_query).
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                         connect_args={"prepare_threshold": None} if url.startswith("postgresql+psycopg") else {})


def affected_rows(result) -> int:
    """How many rows an UPDATE/DELETE executed through a Session touched (the Session types its
    answer as a plain Result; DML answers a CursorResult, which has the count)."""
    return cast(CursorResult, result).rowcount or 0


class Database:
    """A service's database. `begin()` is the unit of work: one transaction, committed on exit."""

    def __init__(self, url: str, *, service: str):
        self.url = url
        self.service = service
        self.engine = make_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self._after_commit_hooks: list = []

        @event.listens_for(self.Session, "after_commit")
        def _after_commit(session):
            if session.info.pop("outbox_dirty", False):
                for hook in self._after_commit_hooks:
                    hook()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def on_outbox_commit(self, hook) -> None:
        """Call `hook()` after any commit that wrote an outbox row (wakes the relay)."""
        self._after_commit_hooks.append(hook)

    @contextmanager
    def begin(self) -> Iterator[Session]:
        with self.Session() as session:
            with session.begin():
                yield session

    def session(self) -> Session:
        return self.Session()

    def dispose(self) -> None:
        self.engine.dispose()


class AwareDateTime(TypeDecorator):
    """DateTime(timezone=True) that always reads back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def dialect_insert(session: Session):
    """The INSERT construct of the session's database (PostgreSQL's or SQLite's), for
    ON CONFLICT DO NOTHING / DO UPDATE, which both have."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert

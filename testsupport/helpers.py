"""Helpers the tests (and bench/) share; no pytest in here (the fixtures are in plugin.py)."""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from services.common import events
from services.common.config import SERVICES, load_config
from services.common.gateway import PrefixDispatcher
from services.common.keys import ensure_keys
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database, service_module


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
    values: dict[str, Any] = dict(var_dir=var_dir, keys_dir=keys_dir, database_urls=urls, database_listen_urls={},
                                  broker_url="memory://", smtp_url=None, public_url="http://balcao.test", demo=False)
    values.update(overrides)
    return dataclasses.replace(base, **values)


def empty_all_tables(config) -> None:
    """Every table of every service emptied. Tables guarded by triggers (the append-only audit
    log refuses DELETE) have their triggers lifted for this one transaction, and only here."""
    from sqlalchemy import text
    for svc in SERVICES:
        metadata = service_module(svc, "models").metadata
        with database(svc, config).begin() as session:
            guarded = _lift_triggers(session, text)
            for table in reversed(metadata.sorted_tables):
                session.execute(table.delete())
            guarded()


def _lift_triggers(session, text):
    """Disable the user triggers of the service's tables; returns the function that restores them."""
    if session.get_bind().dialect.name == "postgresql":
        tables = session.execute(text(
            "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND pg_catalog.pg_table_is_visible(c.oid)")).scalars().all()
        for table in tables:
            session.execute(text(f'ALTER TABLE "{table}" DISABLE TRIGGER USER'))

        def restore_postgresql():
            for table in tables:
                session.execute(text(f'ALTER TABLE "{table}" ENABLE TRIGGER USER'))
        return restore_postgresql
    triggers = session.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
    for name, _sql in triggers:
        session.execute(text(f'DROP TRIGGER "{name}"'))

    def restore_sqlite():
        for _name, sql in triggers:
            session.execute(text(sql))
    return restore_sqlite


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
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def build_gateway(config):
    """All four apps on one origin, like the embedded mode and the nginx gateway."""
    apps = {svc: service_module(svc, "app").create_app(config) for svc in SERVICES}
    for app in apps.values():
        app.config["TESTING"] = True
    return PrefixDispatcher(apps), apps


def csv_bytes(rows: list[list[str]], delimiter: str = ";") -> bytes:
    """A CSV file's bytes, as a spreadsheet exports it (UTF-8) — for the import tests."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def wait_until(predicate, *, timeout: float, message: str, state=None, interval: float = 0.2):
    """Poll observable state until `predicate()` is truthy and return that value; at the deadline
    fail with `message` (and `state()`, what was observed last). Never sleep-and-hope."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; last seen: {state()}" if state else ""
            raise AssertionError(f"{message} (after {timeout:.0f}s){seen}")
        time.sleep(interval)

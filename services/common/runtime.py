"""Process-level wiring shared by every entry point (embedded mode, gunicorn, consumers, CLI):
one Database, one KeyRing per process, and the service modules looked up by name."""
from __future__ import annotations

import importlib
import threading

from .config import SERVICES, Config, load_config
from .db import Database
from .keys import KeyRing

_lock = threading.Lock()
_databases: dict[str, Database] = {}


def service_module(service: str, part: str):
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return importlib.import_module(f"services.{service}.{part}")


def database(service: str, config: Config | None = None) -> Database:
    config = config or load_config()
    url = config.database_url(service)
    key = f"{service}|{url}"
    with _lock:
        if key not in _databases:
            _databases[key] = Database(url, service=service)
        return _databases[key]


_keyrings: dict[str, KeyRing] = {}


def keyring(config: Config) -> KeyRing:
    """The process's KeyRing of `config`'s keys directory (it reads and parses each key once; a key
    changed on disk takes a restart, as the web apps' keyring always did)."""
    key = str(config.keys_dir)
    with _lock:
        if key not in _keyrings:
            _keyrings[key] = KeyRing(config.keys_dir)
        return _keyrings[key]


def migrate(service: str, config: Config | None = None) -> None:
    """alembic upgrade head for one service's own database."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = config or load_config()
    module = service_module(service, "models")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = database(service, config)
    command.upgrade(cfg, "head")


def schema_revisions(service: str, config: Config | None = None) -> tuple[set[str], set[str]]:
    """(the Alembic revisions the service's database is at, the heads of this code's migrations).
    Equal: `balcao migrate` has run for this code. Raises the driver's error if the database does
    not answer."""
    from pathlib import Path

    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = config or load_config()
    module = service_module(service, "models")
    script = ScriptDirectory(str(Path(module.__file__).parent / "migrations"))
    with database(service, config).engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, set(script.get_heads())


def consumer_worker(service: str, config: Config, **kwargs):
    from .messaging import ConsumerWorker
    models = service_module(service, "models")
    handlers = service_module(service, "consumers").HANDLERS
    return ConsumerWorker(service=service, db=database(service, config), processed=models.processed,
                          handlers=handlers, broker_url=config.broker_url, config=config, **kwargs)


def outbox_relay(service: str, config: Config, **kwargs):
    from .messaging import OutboxRelay
    models = service_module(service, "models")
    return OutboxRelay(database(service, config), models.outbox, config.broker_url,
                       listen_url=config.database_listen_url(service), **kwargs)


def periodic_jobs(service: str, config: Config) -> list:
    """The service's `consumers.PERIODIC = {name: (interval_seconds, fn(config))}` as PeriodicJobs."""
    from .messaging import PeriodicJob
    module = service_module(service, "consumers")
    return [PeriodicJob(name, interval, fn, config)
            for name, (interval, fn) in sorted(getattr(module, "PERIODIC", {}).items())]

"""The distributed smoke tests need a real RabbitMQ and PostgreSQL. Without
BALCAO_TEST_BROKER_URL and BALCAO_TEST_DATABASE_URL they are deselected (not skipped: a skip
would read as "ran and was fine"), and the run says so once."""
from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEEDED = ("BALCAO_TEST_BROKER_URL", "BALCAO_TEST_DATABASE_URL")


def distributed_env_missing() -> list[str]:
    return [name for name in NEEDED if not os.environ.get(name)]


def pytest_collection_modifyitems(config, items):
    missing = distributed_env_missing()
    if not missing:
        return
    deselected = [item for item in items
                  if item.get_closest_marker("distributed") and HERE in Path(str(item.path)).resolve().parents]
    if not deselected:
        return
    items[:] = [item for item in items if item not in deselected]
    config.hook.pytest_deselected(items=deselected)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    message = (f"tests/deploy: deselected {len(deselected)} distributed test(s): set {' and '.join(missing)} "
               "(e.g. amqp://guest:guest@127.0.0.1:5672// and postgresql://postgres@127.0.0.1:5432/postgres) "
               "to run the services as processes against RabbitMQ and PostgreSQL")
    if reporter is not None:
        reporter.write_line(message, yellow=True)
    else:
        print(message)

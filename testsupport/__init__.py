"""Test support for Balcão: the pytest plugin (`testsupport.plugin`, loaded by the top-level
conftest.py) and the helpers the tests and bench/ import from here.

Not part of the installed package (pyproject's packages.find includes services* and deploy*
only): nothing under services/ imports it, and tests/deploy/test_package.py checks that the
built wheel carries neither this package nor an import of pytest."""
from .helpers import (
    InProcessBus,
    QueryCounter,
    build_gateway,
    count_queries,
    csrf_token,
    csv_bytes,
    db_for,
    empty_all_tables,
    make_test_config,
    wait_until,
)
from .infra import Backends, backends, fresh_postgres_databases, private_vhost, resolve_backends

__all__ = ["Backends", "InProcessBus", "QueryCounter", "backends", "build_gateway", "count_queries", "csrf_token",
           "csv_bytes", "db_for", "empty_all_tables", "fresh_postgres_databases", "make_test_config",
           "private_vhost", "resolve_backends", "wait_until"]

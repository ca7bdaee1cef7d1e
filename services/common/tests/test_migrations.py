"""Each service's Alembic migrations build exactly the schema its models describe."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.config import SERVICES
from services.common.runtime import database, service_module


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_models(config, service):
    metadata = service_module(service, "models").metadata
    with database(service, config).engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], f"{service}: models and migrations differ — run `balcao makemigration {service}`: {diff}"

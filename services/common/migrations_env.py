"""The body of every service's alembic `env.py`: migrate the service's own database."""
from __future__ import annotations

from alembic import context


def run(metadata, service: str) -> None:
    from .runtime import database

    db = context.config.attributes.get("database") or database(service)
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()

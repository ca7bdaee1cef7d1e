"""Data owned by the notifier service (its own database)."""
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from services.common.messaging import outbox_tables

metadata = MetaData()


class Base(DeclarativeBase):
    metadata = metadata


outbox, processed = outbox_tables(metadata)

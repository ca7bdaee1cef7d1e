"""Marshmallow schemas for the HTTP input of the notifier service."""
from marshmallow import RAISE, Schema, fields


class MailboxItemSchema(Schema):
    """The path of one message of the dev mailbox."""

    class Meta:
        unknown = RAISE

    delivery_id = fields.UUID(required=True)

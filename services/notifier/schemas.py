"""Marshmallow schemas for the HTTP input of the notifier service."""
from marshmallow import RAISE, fields

from services.common.forms import InputSchema


class MailboxItemSchema(InputSchema):
    """The path of one message of the dev mailbox."""

    class Meta:
        unknown = RAISE

    delivery_id = fields.UUID(required=True)

"""Marshmallow schemas for the HTTP input of the invitations service."""
from marshmallow import RAISE, fields, validate

from services.common.forms import InputSchema


class InvitationLinkSchema(InputSchema):
    """The path of the e-mailed link: /convite/<token>."""

    class Meta:
        unknown = RAISE

    token = fields.String(required=True, validate=[validate.Length(min=20, max=200),
                                                   validate.Regexp(r"^[A-Za-z0-9_-]+$")])

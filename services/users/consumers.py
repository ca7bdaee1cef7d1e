"""Event handlers of the users service: one per event type it consumes."""
from services.common.events import consumed_by


def _not_yet(payload, ctx):  # placeholder until the service's handlers are written
    return None


HANDLERS = {etype: _not_yet for etype in consumed_by("users")}

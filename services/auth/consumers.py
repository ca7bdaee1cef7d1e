"""Event handlers of the auth service: one per event type it consumes.

Auth consumes no event yet; a handler is `handler(payload, ctx)` calling service functions.
"""
HANDLERS: dict = {}

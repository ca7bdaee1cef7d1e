"""Event handlers of the auth service: one per event type it consumes."""


def on_membership_granted(payload, ctx):
    """Placeholder: the "Sua conta foi vinculada a …" security notice is sent from here (issue 4)."""
    return None


HANDLERS = {"membership.granted": on_membership_granted}

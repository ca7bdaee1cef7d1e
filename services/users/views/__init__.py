"""Pages of the users service, one module per area, all on one blueprint (`users.<endpoint>`).
Each view parses, calls a query or a service function, and renders or redirects."""
from . import account, client_users, companies, departments, home, settings, signup, team  # noqa: F401  (each registers its routes on bp)
from .common import bp

__all__ = ["bp"]

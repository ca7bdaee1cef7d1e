"""The users service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("users", "services.users", url_prefix=PREFIXES["users"], config=config)
    return app

"""The notifier service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("notifier", "services.notifier", url_prefix=PREFIXES["notifier"], config=config)
    return app

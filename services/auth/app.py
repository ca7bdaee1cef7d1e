"""The auth service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("auth", "services.auth", url_prefix=PREFIXES["auth"], config=config)
    from .views import bp
    app.register_blueprint(bp)
    return app

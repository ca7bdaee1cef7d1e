"""The invitations service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("invitations", "services.invitations", url_prefix=PREFIXES["invitations"], config=config)
    from .views import bp
    app.register_blueprint(bp, url_prefix=PREFIXES["invitations"])
    # The e-mailed link works for anyone holding it, logged in or not: never detour through renewal.
    app.config["BALCAO_RENEWAL_EXEMPT"].add("invitations.open_invitation")
    return app

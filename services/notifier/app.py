"""The notifier service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("notifier", "services.notifier", url_prefix=PREFIXES["notifier"], config=config)
    from .rendering import linkify
    from .views import bp
    app.register_blueprint(bp, url_prefix=PREFIXES["notifier"])
    # The dev mailbox needs no login: never detour through session renewal.
    app.config["BALCAO_RENEWAL_EXEMPT"].update({"notifier.mailbox", "notifier.message", "notifier.message_html"})
    app.add_template_filter(linkify, "linkify")
    return app

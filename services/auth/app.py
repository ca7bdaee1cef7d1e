"""The auth service's Flask application."""
import os

from services.common.gateway import PREFIXES
from services.common.web import create_base_app

from .throttle import make_store


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def create_app(config=None):
    app = create_base_app("auth", "services.auth", url_prefix=PREFIXES["auth"], config=config)
    # Session timeouts (not in services.common.config.Config yet: read here).
    app.config["AUTH_SESSION_IDLE_MINUTES"] = _int_env("BALCAO_SESSION_IDLE_MINUTES", 30)
    app.config["AUTH_SESSION_ABSOLUTE_HOURS"] = _int_env("BALCAO_SESSION_ABSOLUTE_HOURS", 12)
    # Failed-attempt counters and rate limits shared by every worker: Redis or the auth database.
    app.extensions["balcao.auth.throttle"] = make_store(app.config["BALCAO"], app.extensions["balcao.db"])
    from .views import bp
    app.register_blueprint(bp)
    return app

"""The auth service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app

from .throttle import make_store

# Pages that work without a session (or end/renew it): an expired session token is never sent
# through renewal here; it just counts as no session.
ANONYMOUS_ENDPOINTS = {"auth.login", "auth.logout", "auth.renew_session", "auth.invitation",
                       "auth.invitation_register", "auth.invitation_link", "auth.invitation_send_code",
                       "auth.invitation_check_code", "auth.second_factor",
                       "auth.required_mfa",
                       "auth.forgot_password", "auth.reset_password",
                       "auth.firm_signup", "auth.firm_signup_confirm"}


def create_app(config=None):
    app = create_base_app("auth", "services.auth", url_prefix=PREFIXES["auth"], config=config)
    settings = app.config["BALCAO"]
    app.config["AUTH_SESSION_IDLE_MINUTES"] = settings.session_idle_minutes
    app.config["AUTH_SESSION_ABSOLUTE_HOURS"] = settings.session_absolute_hours
    app.config["BALCAO_RENEWAL_EXEMPT"] |= ANONYMOUS_ENDPOINTS
    # Failed-attempt counters and rate limits shared by every worker: Redis or the auth database.
    app.extensions["balcao.auth.throttle"] = make_store(settings, app.extensions["balcao.db"])
    from .views import bp
    app.register_blueprint(bp)
    return app

"""The users service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("users", "services.users", url_prefix=PREFIXES["users"], config=config)
    from .views import bp
    app.register_blueprint(bp)
    from services.common.frontchannel import register_notice_endpoint

    from .services import record_session_ended
    register_notice_endpoint(app, "users", record=record_session_ended)  # front-channel logout
    from . import pii
    pii.configure(app.config["BALCAO"])
    app.add_template_filter(pii.mask_cpf, "cpf_mascarado")
    app.add_template_filter(pii.mask_phone, "telefone_mascarado")
    from .states import client_user_state_html, invitation_state_html
    app.add_template_global(client_user_state_html, "client_user_state_html")
    app.add_template_global(invitation_state_html, "invitation_state_html")
    return app

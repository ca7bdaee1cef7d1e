"""The documents service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


def create_app(config=None):
    app = create_base_app("documents", "services.documents", url_prefix=PREFIXES["documents"], config=config)
    # uploads: the largest file accepted plus room for the form around it
    app.config["MAX_CONTENT_LENGTH"] = (app.config["BALCAO"].documents_max_mb + 1) * 1024 * 1024
    from .views import bp
    from .views.files import storage_problem
    app.register_blueprint(bp, url_prefix=PREFIXES["documents"])
    app.config["BALCAO_READY_CHECKS"]["storage"] = storage_problem
    return app

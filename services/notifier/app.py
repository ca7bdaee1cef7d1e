"""The notifier service's Flask application."""
from services.common.gateway import PREFIXES
from services.common.web import create_base_app


class _AllowSameOriginFraming:
    """services/common/web.py forces `X-Frame-Options: DENY` after every view (unconditionally,
    so a view cannot override it). The dev mailbox frames its HTML preview from the same origin:
    a response carrying the private ALLOW_FRAMING_HEADER gets SAMEORIGIN instead (the marker is
    removed). Nothing else changes."""

    def __init__(self, wsgi_app, marker: str):
        self.wsgi_app, self.marker = wsgi_app, marker.lower()

    def __call__(self, environ, start_response):
        def _start(status, headers, exc_info=None):
            values = [v for k, v in headers if k.lower() == self.marker]
            if values:
                headers = [(k, v) for k, v in headers if k.lower() not in (self.marker, "x-frame-options")]
                headers.append(("X-Frame-Options", values[0]))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, _start)


def create_app(config=None):
    app = create_base_app("notifier", "services.notifier", url_prefix=PREFIXES["notifier"], config=config)
    from .rendering import linkify
    from .views import ALLOW_FRAMING_HEADER, bp
    app.register_blueprint(bp, url_prefix=PREFIXES["notifier"])
    app.add_template_filter(linkify, "linkify")
    app.wsgi_app = _AllowSameOriginFraming(app.wsgi_app, ALLOW_FRAMING_HEADER)
    return app

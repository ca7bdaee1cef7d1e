"""One origin for the browser. The path prefixes below are the routing table; the nginx
gateway in deploy/ routes the same prefixes to the same services."""
from __future__ import annotations

PREFIXES = {"auth": "/auth", "invitations": "/convite", "notifier": "/notificacoes", "documents": "/documentos",
            "users": ""}


class PrefixDispatcher:
    """WSGI app that hands each request to the service owning its path prefix (no rewriting:
    every service registers its routes under its own prefix)."""

    def __init__(self, apps: dict, extra: dict | None = None):
        self.routes = sorted(((PREFIXES[svc], app) for svc, app in apps.items() if PREFIXES[svc]),
                             key=lambda r: -len(r[0]))
        self.default = apps["users"]
        self.extra = extra or {}

    def app_for(self, path: str):
        if path in self.extra:
            return self.extra[path]
        for prefix, app in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                return app
        return self.default

    def __call__(self, environ, start_response):
        return self.app_for(environ.get("PATH_INFO", "/"))(environ, start_response)

"""Pages of the documents service (Documentos), under /documentos."""
from . import audit, bell, client, files, folders, home, staff  # noqa: E402,F401  (register the routes)
from .common import bp

__all__ = ["bp"]

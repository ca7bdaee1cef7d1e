"""Structured (JSON, one object per line) logs for `balcao web` and `balcao worker`.

Every line carries: timestamp (UTC, ISO 8601), level, logger, message, service, role, pid and
the correlation id of the request or message being handled
(`services.common.messaging.correlation_id_var`, set by the web layer from X-Request-ID and by
the consumers from each envelope). Message bodies are never logged by our code.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "", role: str = "", **kwargs):
        super().__init__()
        self.service, self.role = service, role

    def format(self, record: logging.LogRecord) -> str:
        from .messaging import correlation_id_var
        data = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "role": self.role,
            "pid": record.process,
            "correlation_id": getattr(record, "correlation_id", None) or correlation_id_var.get(),
        }
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def formatter_config(service: str, role: str) -> dict:
    """The `formatters` entry of a logging dictConfig (gunicorn's logconfig_dict)."""
    return {"()": "services.common.logs.JsonFormatter", "service": service, "role": role}


def configure_logging(service: str, role: str, *, level: str | None = None, stream=None) -> None:
    """Root logger → one JSON object per line on stderr (replaces any earlier configuration)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service, role))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("BALCAO_LOG_LEVEL", "INFO")).upper())

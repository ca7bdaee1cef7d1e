"""The auth service's clock. Everything time-based in auth (locks, rate-limit windows, session
idle and absolute timeouts) asks `now()`, so tests move time by replacing it instead of sleeping."""
from __future__ import annotations

from datetime import UTC, datetime


def _real_now() -> datetime:
    return datetime.now(UTC)


now = _real_now


def timestamp() -> float:
    return now().timestamp()

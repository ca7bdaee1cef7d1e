"""How every page shows a moment: Brasília time (America/Sao_Paulo), dd/mm/aaaa, labelled.

The Jinja filters `datahora` and `data` are registered on every service's app by
`services.common.web.create_base_app`; templates never call strftime themselves.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _

try:
    BRASILIA = ZoneInfo("America/Sao_Paulo")
except ZoneInfoNotFoundError:  # no tz database: Brasília has had no daylight saving time since 2019
    BRASILIA = timezone(timedelta(hours=-3))  # type: ignore[assignment]


def in_brasilia(value: datetime) -> datetime:
    """`value` in Brasília time; a naive value (SQLite gives those back) is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(BRASILIA)


def minuto(value: datetime) -> str:
    """"29/11/2026 10:05": a moment in Brasília time, to the minute, without the label."""
    v = in_brasilia(value)
    return f"{v.day:02d}/{v.month:02d}/{v.year} {v.hour:02d}:{v.minute:02d}"


def datahora(value: datetime | None, rotulo: bool = True) -> str:
    """"29/11/2026 10:05 (horário de Brasília)"; `rotulo=False` leaves the label to a table's
    column header ("Último acesso (horário de Brasília)"). Empty for None."""
    if value is None:
        return ""
    return f"{minuto(value)} ({_('horário de Brasília')})" if rotulo else minuto(value)


def datahora_formatter() -> Callable[[datetime], str]:
    """`datahora` (labelled) for the many moments of one page: the label is translated once, not
    once per value (a table's rows)."""
    label = _("horário de Brasília")
    return lambda value: f"{minuto(value)} ({label})"


def data(value: date | datetime | None) -> str:
    """"29/11/2026": the day in Brasília of a moment, or a calendar date as it is."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = in_brasilia(value)
    return f"{value.day:02d}/{value.month:02d}/{value.year}"


def register(app) -> None:
    app.add_template_filter(datahora, "datahora")
    app.add_template_filter(data, "data")

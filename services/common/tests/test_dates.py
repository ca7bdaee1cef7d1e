"""One way to show a moment on every page: Brasília time (America/Sao_Paulo), dd/mm/aaaa, labelled
— Minha conta › Sessões (auth), the audit log and the invitation state (users), the dev mailbox
(notifier) alike."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.auth import services as auth_services
from services.auth.models import AuthSession
from services.common import dates
from services.common.embedded import embedded_config
from services.common.keys import KeyRing
from testsupport import build_gateway, csrf_token, db_for

CARLOS = {"email": "carlos@exemplo.com.br", "name": "Carlos Souza", "password": "girassol-azul-42"}


@pytest.fixture
def apps(config):
    _gateway, apps = build_gateway(embedded_config(config))
    return apps


def test_a_moment_in_brasilia_time_labelled(apps):
    with apps["auth"].test_request_context("/"):
        assert dates.datahora(datetime(2026, 11, 29, 13, 5, tzinfo=UTC)) == "29/11/2026 10:05 (horário de Brasília)"
        assert dates.datahora(datetime(2026, 1, 2, 2, 30)) == "01/01/2026 23:30 (horário de Brasília)"  # naive = UTC
        assert dates.datahora(datetime(2026, 11, 29, 13, 5, tzinfo=UTC), rotulo=False) == "29/11/2026 10:05"
        assert dates.datahora(None) == ""
        assert dates.data(datetime(2026, 1, 2, 2, 30, tzinfo=UTC)) == "01/01/2026"  # still the 1st in Brasília
        assert dates.data(date(2026, 12, 5)) == "05/12/2026"
    with apps["auth"].test_request_context("/", headers={"Cookie": "balcao_locale=en"}):
        assert dates.datahora(datetime(2026, 11, 29, 13, 5, tzinfo=UTC)) == "29/11/2026 10:05 (Brasília time)"


def test_every_service_renders_dates_with_the_one_shared_filter(apps):
    for service, app in apps.items():
        assert app.jinja_env.filters["datahora"] is dates.datahora, service
        assert app.jinja_env.filters["data"] is dates.data, service


def _brasilia_minutes(start: datetime, end: datetime) -> set[str]:
    """Every "dd/mm/aaaa hh:mm" in Brasília between two moments (a page shows one of them)."""
    shown, moment = set(), start.replace(second=0, microsecond=0)
    while moment <= end:
        shown.add(dates.in_brasilia(moment).strftime("%d/%m/%Y %H:%M"))
        moment += timedelta(minutes=1)
    return shown


def test_minha_conta_sessoes_shows_brasilia_time_not_utc(config):
    config = embedded_config(config)
    with db_for(config, "auth").begin() as s:
        auth_services.register_identity(s, **CARLOS)
    gateway, _apps = build_gateway(config)
    client = Client(gateway, Response, use_cookies=True)
    page = client.get("/auth/entrar").get_data(as_text=True)
    before = datetime.now(UTC)
    client.post("/auth/entrar", data={"csrf_token": csrf_token(page), "email": CARLOS["email"],
                                      "password": CARLOS["password"]})
    html = client.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    after = datetime.now(UTC)
    with db_for(config, "auth").begin() as s:
        assert s.scalar(select(AuthSession.last_seen_at)) is not None
    shown = re.findall(r"<td[^>]*>(\d\d/\d\d/\d{4} \d\d:\d\d)</td>", html)
    assert shown and set(shown) <= _brasilia_minutes(before, after), (shown, html)
    assert "Último acesso (horário de Brasília)" in html and "UTC" not in html


def test_the_dev_mailbox_shows_brasilia_time(config):
    from services.notifier.consumers import deliver_email
    from services.notifier.tests.test_notifier import invitation_request
    config = embedded_config(config)
    keyring = KeyRing(config.keys_dir)
    before = datetime.now(UTC)
    with db_for(config, "notifier").begin() as s:
        deliver_email(s, request=invitation_request(keyring), config=config, keyring=keyring)
    after = datetime.now(UTC)
    gateway, _apps = build_gateway(config)
    html = Client(gateway, Response).get("/notificacoes/caixa-de-entrada").get_data(as_text=True)
    shown = re.findall(r'<td class="nowrap"[^>]*>(\d\d/\d\d/\d{4} \d\d:\d\d)</td>', html)
    assert shown and set(shown) <= _brasilia_minutes(before, after), (shown, html)
    assert "Data (horário de Brasília)" in html and "UTC" not in html

"""The dev mailbox shows every e-mail the product sends, password-reset links included, to anyone
who can reach it. So:

1. it exists only in the embedded mode, only without BALCAO_SMTP_URL, only on a loopback bind,
   and says on each of its pages that it is a development mailbox;
2. the distributed mode (`balcao web` / `balcao worker` of any service) refuses to start without
   BALCAO_SMTP_URL (the reason on stderr, a non-zero exit), and a web app created some other way
   says why in /readyz;
3. docker-compose.yml requires BALCAO_SMTP_URL (tests/deploy/test_compose.py).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.common import worker
from services.common.config import SERVICES, is_loopback
from services.common.embedded import embedded_config
from services.common.gateway import PREFIXES
from services.common.keys import KeyRing
from services.common.runtime import database
from services.notifier.consumers import deliver_email
from testsupport import build_gateway

from .test_notifier import reset_request

ROOT = Path(__file__).resolve().parents[3]
MAILBOX = "/notificacoes/caixa-de-entrada"
BANNER = "Caixa de entrada de desenvolvimento."


def _distributed(config):
    return dataclasses.replace(config, embedded=False)


def _client(config) -> Client:
    gateway, _apps = build_gateway(config)
    return Client(gateway, Response, use_cookies=True)


def _a_reset_email(config):
    keyring = KeyRing(config.keys_dir)
    with database("notifier", config).begin() as session:
        return deliver_email(session, request=reset_request(keyring), config=config, keyring=keyring)


def _mailbox_paths(delivery) -> list[str]:
    return [MAILBOX, f"{MAILBOX}/{delivery.id}", f"{MAILBOX}/{delivery.id}/html"]


# --------------------------------------------------------------------------- 1. where it exists

def test_the_embedded_mode_on_loopback_without_smtp_has_the_mailbox_and_says_what_it_is(config):
    local = embedded_config(config, host="127.0.0.1")
    assert local.dev_mailbox and local.mail_problem is None
    delivery = _a_reset_email(local)
    client = _client(local)
    for path in _mailbox_paths(delivery)[:2]:
        page = client.get(path)
        html = page.get_data(as_text=True)
        assert page.status_code == 200, path
        assert BANNER in html and "nunca a publique" in html, path
    assert client.get(_mailbox_paths(delivery)[2]).status_code == 200


@pytest.mark.parametrize("variant", ["distributed", "smtp_configured", "public_bind"])
def test_anywhere_else_the_mailbox_does_not_exist(config, variant):
    """The reset e-mail is stored, but no page shows it: whoever asked for someone else's reset
    cannot read the link."""
    configs = {
        "distributed": _distributed(config),                                   # `balcao web notifier`
        "smtp_configured": embedded_config(dataclasses.replace(config, smtp_url="smtp://127.0.0.1:1")),
        "public_bind": embedded_config(config, host="0.0.0.0"),                # `balcao run --host 0.0.0.0`
    }
    chosen = configs[variant]
    assert not chosen.dev_mailbox
    delivery = _a_reset_email(embedded_config(config))
    client = _client(chosen)
    for path in _mailbox_paths(delivery):
        response = client.get(path)
        assert response.status_code == 404, (variant, path)
        assert "redefinir-senha" not in response.get_data(as_text=True)


def test_only_loopback_addresses_count_as_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.0.10", "10.0.0.1", "balcao.example", ""))


def test_the_banner_of_balcao_run_says_where_email_goes(config):
    from services.common.embedded import _banner
    local = _banner(embedded_config(config))
    assert "/notificacoes/caixa-de-entrada" in local and "desenvolvimento" in local
    relayed = _banner(embedded_config(dataclasses.replace(config, smtp_url="smtp://mailer:s3cr3t@relay.example:587")))
    assert "caixa-de-entrada" not in relayed and "relay.example:587" in relayed and "s3cr3t" not in relayed


def test_balcao_run_on_a_public_address_without_smtp_refuses_to_start(tmp_path):
    env = {**os.environ, "BALCAO_VAR_DIR": str(tmp_path), "BALCAO_SMTP_URL": "", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "balcao_cli", "run", "--host", "0.0.0.0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "BALCAO_SMTP_URL" in result.stderr and "0.0.0.0" in result.stderr
    assert not (tmp_path / "auth.sqlite3").exists()  # refused before anything was prepared


# --------------------------------------------------------------------------- 2. distributed mode

@pytest.mark.parametrize("service", SERVICES)
def test_web_and_worker_of_every_service_refuse_to_start_without_smtp(config, service, monkeypatch):
    def must_not_start(*_args, **_kwargs):
        raise AssertionError("started without an SMTP relay")

    monkeypatch.setattr(worker, "_configure_logging", must_not_start)
    monkeypatch.setattr(worker, "limit_malloc_arenas", must_not_start)
    distributed = _distributed(config)
    with pytest.raises(SystemExit) as web:
        worker.run_web(service, distributed, bind="127.0.0.1:1", workers=1)
    with pytest.raises(SystemExit) as consumer:
        worker.run_worker(service, distributed)
    for exited, role in ((web, "web"), (consumer, "worker")):
        message = str(exited.value.code)
        assert f"balcao {role} {service}" in message and "BALCAO_SMTP_URL is not set" in message


def test_the_refusal_is_a_non_zero_exit_with_the_reason_on_stderr(tmp_path):
    env = {**os.environ, "BALCAO_VAR_DIR": str(tmp_path), "BALCAO_SMTP_URL": "", "PYTHONPATH": str(ROOT),
           "BALCAO_BROKER_URL": "memory://"}
    for args in (["web", "notifier", "--bind", "127.0.0.1:1"], ["worker", "auth"]):
        result = subprocess.run([sys.executable, "-m", "balcao_cli", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, args
        assert "BALCAO_SMTP_URL is not set" in result.stderr and "dev mailbox" in result.stderr, args


def test_readyz_says_why_a_distributed_service_without_smtp_is_not_ready(config):
    client = _client(_distributed(config))
    for svc in SERVICES:
        response = client.get(f"{PREFIXES[svc]}/readyz")
        assert response.status_code == 503, svc
        assert "BALCAO_SMTP_URL is not set" in response.json["email"], svc
    with_relay = _client(_distributed(dataclasses.replace(config, smtp_url="smtp://127.0.0.1:1")))
    assert "email" not in with_relay.get("/notificacoes/readyz").json

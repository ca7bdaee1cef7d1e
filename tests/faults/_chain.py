"""Helpers of the fault tests: the product running as separate processes (deploy/stack.py)
against the machine's PostgreSQL and a private vhost of its RabbitMQ, driven over HTTP like a
browser does, and the checks every scenario ends with ("every invitation e-mail arrived exactly
once, nothing stuck"). No mocks: real gunicorn, real workers, real broker, real SMTP server."""
from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import sys
import time
import uuid

import requests
from sqlalchemy import create_engine, text

from deploy.stack import Stack, free_port
from services.common.config import SERVICES
from services.common.testing import _fresh_postgres_databases, csrf_token
from services.common.testing import private_vhost
from tests.conftest import ROOT

ADMIN_PASSWORD = "Uma-senha-bem-longa-2026"
BATCH = 30
RABBITMQCTL = "/usr/sbin/rabbitmqctl"


def cnpj() -> str:
    """A random valid CNPJ (check digits computed)."""
    digits = [random.randint(0, 9) for _ in range(8)] + [0, 0, 0, 1]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        rest = sum(d * w for d, w in zip(digits, weights)) % 11
        digits.append(0 if rest < 2 else 11 - rest)
    return "".join(map(str, digits))


class Product:
    """The running stack plus what a test needs to drive and inspect it."""

    def __init__(self, stack: Stack, env: dict, database_urls: dict, broker_url: str):
        self.stack, self.env, self.database_urls, self.broker_url = stack, env, database_urls, broker_url
        self.url = stack.url
        self._engines = {}

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "balcao_cli", *args], cwd=ROOT,
                                env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def scalar(self, service: str, sql: str):
        if service not in self._engines:
            url = self.database_urls[service]
            if url.startswith("postgresql://"):
                url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            self._engines[service] = create_engine(url)
        with self._engines[service].connect() as conn:
            return conn.execute(text(sql)).scalar()

    def dispose(self):
        for engine in self._engines.values():
            engine.dispose()


@contextlib.contextmanager
def running_product(workdir, mailbox, *, worker_processes=None):
    base_broker = os.environ["BALCAO_TEST_BROKER_URL"]
    with private_vhost(base_broker) as broker:
        urls = _fresh_postgres_databases(os.environ["BALCAO_TEST_DATABASE_URL"], "flt" + uuid.uuid4().hex[:6])
        port = free_port()
        env = {"BALCAO_BROKER_URL": broker, "BALCAO_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}",
               "BALCAO_DEMO": "0", "BALCAO_SECRET_KEY": uuid.uuid4().hex,
               "BALCAO_VAR_DIR": str(workdir / "var"), "BALCAO_KEYS_DIR": str(workdir / "keys"),
               "BALCAO_PUBLIC_URL": f"http://127.0.0.1:{port}",
               **{f"BALCAO_{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES}}
        stack = Stack(env=env, gateway_port=port, workdir=workdir, worker_processes=worker_processes)
        stack.start(timeout=120)
        product = Product(stack, env, urls, broker)
        try:
            yield product
        finally:
            stack.stop()
            product.dispose()


class Staff:
    """An administrator of a fresh firm, logged in through the gateway (requests.Session)."""

    def __init__(self, product: Product, tag: str):
        self.product, self.tag = product, tag
        email = f"admin-{tag}@firma.example"
        out = product.cli("create-firm", "--name", f"Contabilidade {tag}", "--cnpj", cnpj(),
                          "--admin-name", f"Admin {tag}", "--admin-email", email,
                          "--admin-password", ADMIN_PASSWORD)
        self.slug = out.strip().splitlines()[-1]
        self.company_id = product.cli("create-company", "--firm", self.slug, "--name", f"Empresa {tag} Ltda",
                                      "--cnpj", cnpj()).strip().splitlines()[-1]
        self.http = requests.Session()
        page = self.http.get(product.url + "/auth/entrar", timeout=30)
        done = self.http.post(product.url + "/auth/entrar", timeout=30,
                              data={"csrf_token": csrf_token(page.text), "email": email,
                                    "password": ADMIN_PASSWORD})
        assert done.status_code == 200 and "/auth/entrar" not in done.url, done.text[:500]
        self.form_url = f"{product.url}/e/{self.slug}/configuracoes/usuarios-de-clientes/novo"
        self.csrf = csrf_token(self.http.get(self.form_url, timeout=30).text)
        self.invited: list[str] = []

    def invite(self, n: int, *, request_id: str | None = None) -> list[str]:
        """Register `n` client users with access "now" (Ativar + Envie agora); their e-mails."""
        emails = []
        headers = {"X-Request-ID": request_id} if request_id else {}
        for _ in range(n):
            i = len(self.invited) + 1
            email = f"cliente{i}-{self.tag}@cliente.example"
            response = self.http.post(self.form_url, timeout=30, headers=headers, data={
                "csrf_token": self.csrf, "step": "2", "name": f"Cliente {i} {self.tag}", "email": email,
                "cpf": "", "phone": "", "access": "now", "company_ids": self.company_id})
            assert response.status_code == 200 and "/novo" not in response.url, \
                f"{response.status_code} {response.url}: {response.text[:300]}"
            self.invited.append(email)
            emails.append(email)
        return emails


def wait_until(predicate, *, timeout: float, message: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout:.0f}s)")
        time.sleep(interval)  # polling observable state with a deadline, not waiting for luck


def messages_to(mailbox, recipients) -> list:
    wanted = set(recipients)
    with mailbox._cond:
        return [m for m in mailbox.messages if any(r in str(m["To"]) for r in wanted)]


def _stuck(product: Product) -> dict:
    stuck = {svc: product.scalar(svc, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
             for svc in SERVICES}
    stuck["deliveries not sent"] = product.scalar("notifier", "SELECT count(*) FROM deliveries WHERE status <> 'sent'")
    return {k: v for k, v in stuck.items() if v}


def assert_every_invitation_delivered_once(product: Product, mailbox, staff: Staff, *, timeout: float = 120,
                                           resent_after_crash: int = 0):
    """Every invited person got their invitation with one distinct Message-ID, and nothing is
    stuck: every outbox row published, every notifier delivery "sent".

    `resent_after_crash`: how many copies may be repeated *with the same Message-ID* — only when
    the test SIGKILLs the notifier: an e-mail the SMTP server accepted just before the process
    died, before its delivery record committed, is sent again (at-least-once; no transaction spans
    SMTP). A receiving server sees the same Message-ID twice; a different one would be a bug."""
    expected = set(staff.invited)

    def missing():
        got = messages_to(mailbox, expected)
        return sorted(r for r in expected if not any(r in str(m["To"]) for m in got))

    wait_until(lambda: not missing(), timeout=timeout,
               message="not every invitation e-mail arrived", )
    wait_until(lambda: not _stuck(product), timeout=timeout, message="something is stuck")
    got = messages_to(mailbox, expected)
    per_recipient = {r: [str(m["Message-ID"]) for m in got if r in str(m["To"])] for r in expected}
    several_ids = {r: ids for r, ids in per_recipient.items() if len(set(ids)) != 1}
    assert not several_ids, f"an invitation sent under several Message-IDs: {several_ids}"
    all_ids = [ids[0] for ids in per_recipient.values()]
    assert len(set(all_ids)) == len(expected), "two invitations share a Message-ID"
    copies = {r: len(ids) for r, ids in per_recipient.items() if len(ids) > 1}
    assert sum(n - 1 for n in copies.values()) <= resent_after_crash, f"e-mails sent more than once: {copies}"
    assert all(staff.tag in str(m["Subject"]) for m in got), [str(m["Subject"]) for m in got]


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run([RABBITMQCTL, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

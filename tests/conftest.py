"""Fixtures shared by the cross-service tests (tests/e2e, tests/faults): the product running as it does for real, a real SMTP server, a real browser.

`product`: with a RabbitMQ and a PostgreSQL (BALCAO_TEST_BROKER_URL and BALCAO_TEST_DATABASE_URL —
CI gives the machine's — or, without them, testcontainers where a Docker engine answers: see
testsupport/infra.py), the distributed topology from deploy/stack.py: every service under
gunicorn plus its worker process, behind nginx, a fresh database per service. Without them,
the embedded mode (`balcao run`) in a subprocess — the same pages, consumers in threads.
Either way e-mail goes over SMTP to an aiosmtpd server owned by the test.
"""
from __future__ import annotations

import contextlib
import email
import email.policy
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy.stack import free_port
from services.common.config import SERVICES
from services.common.worker import WEB_THREADS
from testsupport import wait_until  # noqa: F401 (the fault and e2e tests import it from here)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("BALCAO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Mailbox:
    """What the SMTP server received, parsed; `wait_for` blocks until a matching message arrives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []
        self.arrived: list[float] = []  # time.monotonic() of each message's arrival
        self._cond = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.add(envelope.content)
        return "250 OK"

    def add(self, content: bytes) -> None:
        msg = email.message_from_bytes(content, policy=email.policy.default)
        with self._cond:
            self.raw.append(content)
            self.messages.append(msg)
            self.arrived.append(time.monotonic())
            self._cond.notify_all()

    def received(self) -> list[tuple[float, str, str]]:
        """(arrival time, recipient address, Message-ID) of every message so far."""
        from email.utils import getaddresses
        with self._cond:
            pairs = list(zip(self.arrived, self.messages, strict=True))
        return [(at, address.lower(), str(msg["Message-ID"]))
                for at, msg in pairs for _name, address in getaddresses([str(msg["To"])])]

    def last_arrival(self) -> float | None:
        with self._cond:
            return self.arrived[-1] if self.arrived else None

    def wait_for(self, *, to: str, subject_contains: str, after: int = 0, timeout: float = 60):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages[after:]:
                    if to in str(msg["To"]) and subject_contains in str(msg["Subject"]):
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [(str(m["To"]), str(m["Subject"])) for m in self.messages]
                    raise AssertionError(f"no e-mail to {to} about {subject_contains!r}; received: {got}")
                self._cond.wait(remaining)

    def count(self) -> int:
        with self._cond:
            return len(self.messages)

    def by_recipient(self) -> dict[str, list]:
        with self._cond:
            messages = list(self.messages)
        grouped: dict[str, list] = {}
        for msg in messages:
            grouped.setdefault(str(msg["To"]), []).append(msg)
        return grouped


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def link_in(msg, path_fragment: str) -> str:
    match = re.search(r"https?://\S*" + re.escape(path_fragment) + r"[^\s<>\"]+", text_of(msg))
    assert match, f"no link containing {path_fragment} in the e-mail text"
    return match.group(0)


class SwitchableSmtp:
    """A real SMTP server (aiosmtpd) on a fixed port that a test may stop and start again (an
    outage); what it received survives the restarts (one Mailbox)."""

    def __init__(self):
        self.port = free_port()
        self.mailbox = Mailbox()
        self.mailbox.port = self.port
        self._controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller
        if self._controller is None:
            self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture(scope="module")
def mailbox():
    smtp = SwitchableSmtp()
    smtp.start()
    yield smtp.mailbox
    smtp.stop()


class RunningProduct:
    """The product as it runs for real, plus what a test needs to drive and inspect it."""

    def __init__(self, url: str, env: dict, database_urls: dict, broker_url: str | None, stack=None,
                 rabbitmqctl=None):
        self.url, self.env, self.database_urls, self.broker_url = url, env, database_urls, broker_url
        self.stack = stack  # deploy.stack.Stack in the distributed mode, None in the embedded one
        self.rabbitmqctl = rabbitmqctl  # `rabbitmqctl ARGS` on the broker's node → (status, output)
        self.pgbouncer = None  # testsupport.pgbouncer.PgBouncer when the services go through one
        self._engines: dict = {}

    def cli(self, *args: str) -> str:
        """Run the `balcao` command against the running product's configuration."""
        result = subprocess.run([sys.executable, "-m", "balcao_cli", *args], cwd=ROOT, env={**os.environ, **self.env},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def _engine(self, service: str):
        from services.common.db import make_engine
        if service not in self._engines:
            self._engines[service] = make_engine(self.database_urls[service])
        return self._engines[service]

    def scalar(self, service: str, sql: str, **params):
        """One value read from a service's own database (what an operator would look at)."""
        from sqlalchemy import text as sql_text
        with self._engine(service).connect() as conn:
            return conn.execute(sql_text(sql), params).scalar()

    def rows(self, service: str, sql: str, **params) -> list[tuple]:
        """Rows read from a service's own database."""
        from sqlalchemy import text as sql_text
        with self._engine(service).connect() as conn:
            return [tuple(row) for row in conn.execute(sql_text(sql), params)]

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


def _wait_healthy(url: str, proc=None, timeout: float = 90, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the product exited: {log.read_text()[-3000:] if log else ''}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not healthy in {timeout}s: {log.read_text()[-3000:] if log else ''}")


@contextlib.contextmanager
def running_product(workdir: Path, *, smtp_port: int, extra_env: dict | None = None,
                    worker_processes: dict | None = None, web_workers: int = 1, tag: str = "e2e",
                    object_store=None, pgbouncer: bool | None = None, pgbouncer_pool_size: int | None = None):
    """Start the product with e-mail going to the SMTP server on `smtp_port`.

    With a broker and a database server (testsupport.infra: environment → testcontainers):
    the distributed topology (deploy/stack.py) on fresh PostgreSQL databases and a private vhost
    of the RabbitMQ; the documents on the S3 server `object_store` (a started
    testsupport.seaweed.SeaweedServer) when given, else on the filesystem. Without them: the
    embedded mode (`balcao run`) in a subprocess, documents on the filesystem.

    `pgbouncer` (default: BALCAO_TEST_PGBOUNCER=1, which CI's PostgreSQL pass sets): the services
    reach their databases through a PgBouncer of the product's own in transaction mode
    (`pgbouncer_pool_size` server connections per database; default: the README's sizing rule,
    testsupport.pgbouncer.pool_size_for, for this topology), `balcao migrate` and the CLI
    included, and the outbox relays LISTEN on direct connections (BALCAO_<SVC>_DATABASE_LISTEN_URL);
    `product.pgbouncer` is that PgBouncer (its admin console). `product.database_urls` stay direct."""
    from testsupport import backends
    from testsupport.pgbouncer import pgbouncer_requested
    found = backends()
    broker, server = (found.broker_url, found.database_url) if found.distributed else (None, None)
    if broker and server and object_store is not None:
        object_store.empty_bucket()
        extra_env = {**(extra_env or {}), **object_store.env, "BALCAO_DOCUMENTS_S3_ENDPOINT": object_store.endpoint,
                     "BALCAO_DOCUMENTS_S3_BUCKET": object_store.bucket}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base_env = {"BALCAO_VAR_DIR": str(workdir / "var"), "BALCAO_KEYS_DIR": str(workdir / "var" / "keys"),
                "BALCAO_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}", "BALCAO_PUBLIC_URL": url,
                "BALCAO_DEMO": "0", "BALCAO_SECRET_KEY": uuid.uuid4().hex, "PORT": str(port),
                **(extra_env or {})}
    if broker and server:
        from deploy.stack import Stack
        from testsupport import fresh_postgres_databases, private_vhost
        from testsupport.pgbouncer import pgbouncer_in_front_of, pool_size_for
        urls = fresh_postgres_databases(server, tag + uuid.uuid4().hex[:6])
        pooled = pgbouncer_requested() if pgbouncer is None else pgbouncer
        # A private vhost: other test runs on the machine's broker consume the same queue names.
        with contextlib.ExitStack() as resources:
            broker = resources.enter_context(private_vhost(broker))
            env = {**base_env, "BALCAO_BROKER_URL": broker,
                   **{f"BALCAO_{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES}}
            bouncer = None
            if pooled:
                pool_size = pgbouncer_pool_size or pool_size_for(
                    web_workers * WEB_THREADS, max([1, *(worker_processes or {}).values()]))
                bouncer = resources.enter_context(pgbouncer_in_front_of(server, workdir / "pgbouncer",
                                                                        pool_size=pool_size))
                env.update({f"BALCAO_{svc.upper()}_DATABASE_URL": bouncer.pooled(urls[svc]) for svc in SERVICES})
                env.update({f"BALCAO_{svc.upper()}_DATABASE_LISTEN_URL": urls[svc] for svc in SERVICES})
            stack = Stack(env=env, gateway_port=port, workdir=workdir, worker_processes=worker_processes,
                          web_workers=web_workers)
            stack.start(timeout=120)
            product = RunningProduct(url, env, urls, broker, stack, rabbitmqctl=found.rabbitmqctl)
            product.pgbouncer = bouncer
            try:
                yield product
            finally:
                stack.stop()
                product.dispose()
        return
    env = {**base_env, "BALCAO_BROKER_URL": "memory://"}
    urls = {svc: f"sqlite:///{workdir / 'var' / (svc + '.sqlite3')}" for svc in SERVICES}
    product = RunningProduct(url, env, urls, None)
    try:
        with balcao_run(workdir, {**os.environ, **env}, url=url):
            yield product
    finally:
        product.dispose()


@contextlib.contextmanager
def balcao_run(workdir: Path, env: dict, *, url: str, timeout: float = 90):
    """`balcao run` — what `make run` starts — in a subprocess with exactly `env` as its environment,
    until `url` answers healthy; yields the path of its output (the banner, the logs)."""
    log = workdir / "embedded.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", "run"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, proc, timeout=timeout, log=log)
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def product(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("product"), smtp_port=mailbox.port) as running:
        yield running


def random_cnpj() -> str:
    """A random valid CNPJ (check digits computed by python-stdnum)."""
    import random

    from stdnum.br import cnpj
    base = "".join(str(random.randint(0, 9)) for _ in range(8)) + "0001"
    return base + cnpj.calc_check_digits(base)


class Staff:
    """The administrator of a fresh firm (created with the `balcao` CLI), logged in through the
    gateway with requests.Session, registering client users as the browser posts the form."""

    PASSWORD = "Uma-senha-bem-longa-2026"

    def __init__(self, product: RunningProduct, tag: str):
        import requests

        from testsupport import csrf_token
        self.product, self.tag = product, tag
        admin_email = f"admin-{tag}@firma.example"
        self.slug = product.cli("create-firm", "--name", f"Contabilidade {tag}", "--cnpj", random_cnpj(),
                                "--admin-name", f"Admin {tag}", "--admin-email", admin_email,
                                "--admin-password", self.PASSWORD).strip().splitlines()[-1]
        self.company_id = product.cli("create-company", "--firm", self.slug, "--name", f"Empresa {tag} Ltda",
                                      "--cnpj", random_cnpj()).strip().splitlines()[-1]
        self.http = requests.Session()
        page = self.http.get(product.url + "/auth/entrar", timeout=30)
        done = self.http.post(product.url + "/auth/entrar", timeout=30,
                              data={"csrf_token": csrf_token(page.text), "email": admin_email,
                                    "password": self.PASSWORD})
        assert done.status_code == 200 and "/auth/entrar" not in done.url, done.text[:500]
        self.form_url = f"{product.url}/e/{self.slug}/configuracoes/usuarios-de-clientes/novo"
        self.csrf = csrf_token(self.http.get(self.form_url, timeout=30).text)
        self.invited: list[str] = []

    def addresses(self, n: int, *, start: int | None = None) -> list[str]:
        """The e-mails of the next `n` client users this staff member would register."""
        first = len(self.invited) + 1 if start is None else start
        return [f"cliente{first + i}-{self.tag}@cliente.example" for i in range(n)]

    def invite(self, n: int, *, request_id: str | None = None, emails: list[str] | None = None) -> list[str]:
        """Register client users with access "now" (Ativar + Envie agora); their e-mails."""
        headers = {"X-Request-ID": request_id} if request_id else {}
        if emails is None:
            emails = self.addresses(n)
        for address in emails:
            i = len(self.invited) + 1
            response = self.http.post(self.form_url, timeout=30, headers=headers, data={
                "csrf_token": self.csrf, "step": "notificacoes", "name": f"Cliente {i} {self.tag}", "email": address,
                "cpf": "", "phone": "", "access": "now", "company_ids": self.company_id})
            assert response.status_code == 200 and "/novo" not in response.url, \
                f"{response.status_code} {response.url}: {response.text[:300]}"
            self.invited.append(address)
        return emails


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright
    # A page is given 15 s (Playwright's default is 5) to show what is expected: on a loaded
    # 2-core CI machine a request of the embedded mode can wait on SQLite's write lock held by a
    # background job. A wait, never a weaker expectation.
    expect.set_options(timeout=15_000)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def keep_pages(artifacts: Path, **pages) -> None:
    """When a browser test fails: a screenshot and the HTML of each page, for whoever reads the log."""
    for name, page in pages.items():
        try:
            page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
            (artifacts / f"{name}.html").write_text(page.content())
        except Exception as exc:  # the page may be gone; the test's own error matters more
            print(f"no {name} snapshot: {exc}")


@pytest.fixture
def artifacts(request):
    path = ROOT / "test-artifacts" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Fixtures shared by the cross-service tests (tests/e2e, tests/faults): the product running as it does for real, a real SMTP server, a real browser.

`stack`: with BALCAO_TEST_BROKER_URL and BALCAO_TEST_DATABASE_URL (CI gives the machine's
RabbitMQ and PostgreSQL), the distributed topology from deploy/stack.py: every service under
gunicorn plus its worker process, behind nginx, a fresh database per service. Without them,
the embedded mode (`balcao run`) in a subprocess — the same pages, consumers in threads.
Either way e-mail goes over SMTP to an aiosmtpd server owned by the test.
"""
from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from services.common.config import SERVICES

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTED_ENV = ("BALCAO_TEST_BROKER_URL", "BALCAO_TEST_DATABASE_URL")


def distributed_env_missing() -> list[str]:
    return [name for name in DISTRIBUTED_ENV if not os.environ.get(name)]


def pytest_collection_modifyitems(config, items):
    """Tests marked `distributed` need a real RabbitMQ and PostgreSQL. Without
    BALCAO_TEST_BROKER_URL and BALCAO_TEST_DATABASE_URL they are deselected — not skipped: a skip
    would read as "ran and was fine" — and the run says so once."""
    missing = distributed_env_missing()
    if not missing:
        return
    deselected = [item for item in items if item.get_closest_marker("distributed")]
    if not deselected:
        return
    items[:] = [item for item in items if item not in deselected]
    config.hook.pytest_deselected(items=deselected)
    message = (f"deselected {len(deselected)} distributed test(s): set {' and '.join(missing)} "
               "(e.g. amqp://guest:guest@127.0.0.1:5672// and postgresql://postgres@127.0.0.1:5432/postgres) "
               "to run the services as processes against RabbitMQ and PostgreSQL")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, yellow=True)
    else:
        print(message)
CHROMIUM = os.environ.get("BALCAO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """What the SMTP server received, parsed; `wait_for` blocks until a matching message arrives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []
        self._cond = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._cond:
            self.raw.append(envelope.content)
            self.messages.append(msg)
            self._cond.notify_all()
        return "250 OK"

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


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def link_in(msg, path_fragment: str) -> str:
    match = re.search(r"https?://\S*" + re.escape(path_fragment) + r"[^\s<>\"]+", text_of(msg))
    assert match, f"no link containing {path_fragment} in the e-mail text"
    return match.group(0)


@pytest.fixture(scope="module")
def mailbox():
    from aiosmtpd.controller import Controller
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


class RunningProduct:
    def __init__(self, url: str, env: dict, database_urls: dict, broker_url: str | None):
        self.url, self.env, self.database_urls, self.broker_url = url, env, database_urls, broker_url

    def cli(self, *args: str) -> str:
        """Run the `balcao` command against the running product's configuration."""
        result = subprocess.run([sys.executable, "-m", "balcao_cli", *args], cwd=ROOT, env={**os.environ, **self.env},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout


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


@pytest.fixture(scope="module")
def product(mailbox, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("product")
    broker = os.environ.get("BALCAO_TEST_BROKER_URL")
    server = os.environ.get("BALCAO_TEST_DATABASE_URL")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base_env = {"BALCAO_VAR_DIR": str(workdir / "var"), "BALCAO_KEYS_DIR": str(workdir / "var" / "keys"),
                "BALCAO_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}", "BALCAO_PUBLIC_URL": url,
                "BALCAO_DEMO": "0", "BALCAO_SECRET_KEY": uuid.uuid4().hex, "PORT": str(port)}
    if broker and server:
        from deploy.stack import Stack
        from services.common.testing import _fresh_postgres_databases, private_vhost
        urls = _fresh_postgres_databases(server, "e2e" + uuid.uuid4().hex[:6])
        # A private vhost: other test runs on the machine's broker consume the same queue names.
        with private_vhost(broker) as broker:
            env = {**base_env, "BALCAO_BROKER_URL": broker,
                   **{f"BALCAO_{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES}}
            stack = Stack(env=env, gateway_port=port, workdir=workdir)
            stack.start(timeout=120)
            try:
                yield RunningProduct(url, env, urls, broker)
            finally:
                stack.stop()
    else:
        env = {**base_env, "BALCAO_BROKER_URL": "memory://"}
        urls = {svc: f"sqlite:///{workdir / 'var' / (svc + '.sqlite3')}" for svc in SERVICES}
        log = workdir / "embedded.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", "run"], cwd=ROOT,
                                    env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc, log=log)
            yield RunningProduct(url, env, urls, None)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def artifacts(request):
    path = ROOT / "test-artifacts" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path

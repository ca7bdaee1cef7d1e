"""Fault test: the SMTP server goes away in the middle of a batch of invitations and comes
back. Against the distributed topology (gunicorn + worker processes, RabbitMQ, PostgreSQL):
every invitation e-mail arrives, exactly one distinct Message-ID per invitation, and no
delivery is left behind (every Delivery row ends "sent").

The notifier's retry loop (`PERIODIC` in services/notifier/consumers.py, run by
`balcao worker notifier`) is what brings the deliveries that failed during the outage
back; the retry base is shortened to 0.5 s so the test takes seconds, not minutes.
"""
from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict

import pytest
import requests
from sqlalchemy import select
from stdnum.br import cnpj as cnpj_mod

from services.common.config import SERVICES
from services.common.db import make_engine
from services.notifier.models import Delivery
from tests.conftest import Mailbox, RunningProduct, free_port

pytestmark = pytest.mark.distributed

N = 20
ADMIN = ("Olga Prado", "olga@omega.example", "Olga-Omega-Senha-83")
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
COMPANY_RE = re.compile(r'name="company_ids" value="([^"]+)"')


class StoppableSMTP:
    """An aiosmtpd server that can be stopped and started again on the same port; what it
    received survives the restarts (one Mailbox)."""

    def __init__(self):
        self.box = Mailbox()
        self.port = free_port()
        self._controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller
        assert self._controller is None
        self._controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages_by_recipient(self) -> dict[str, list]:
        with self.box._cond:
            messages = list(self.box.messages)
        by = defaultdict(list)
        for msg in messages:
            by[str(msg["To"])].append(msg)
        return by


@pytest.fixture(scope="module")
def smtp():
    server = StoppableSMTP()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker_url():
    """A RabbitMQ virtual host of this module's own (other stacks on the machine's broker use the
    same queue names)."""
    import os
    from services.common.testing import private_vhost
    with private_vhost(os.environ["BALCAO_TEST_BROKER_URL"]) as url:
        yield url


@pytest.fixture(scope="module")
def outage_product(smtp, broker_url, tmp_path_factory):
    """Like tests/conftest.py's distributed `product`, with SMTP at `smtp` and fast retries."""
    import os

    from deploy.stack import Stack
    from services.common.testing import _fresh_postgres_databases
    workdir = tmp_path_factory.mktemp("smtp-outage")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    urls = _fresh_postgres_databases(os.environ["BALCAO_TEST_DATABASE_URL"], "smtp" + uuid.uuid4().hex[:6])
    env = {"BALCAO_VAR_DIR": str(workdir / "var"), "BALCAO_KEYS_DIR": str(workdir / "var" / "keys"),
           "BALCAO_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "BALCAO_PUBLIC_URL": url,
           "BALCAO_DEMO": "0", "BALCAO_SECRET_KEY": uuid.uuid4().hex, "PORT": str(port),
           "BALCAO_SMTP_RETRY_BASE_SECONDS": "0.5", "BALCAO_SMTP_MAX_ATTEMPTS": "10",
           "BALCAO_BROKER_URL": broker_url,
           **{f"BALCAO_{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES}}
    stack = Stack(env=env, gateway_port=port, workdir=workdir)
    stack.start(timeout=120)
    try:
        yield RunningProduct(url, env, urls, env["BALCAO_BROKER_URL"])
    finally:
        stack.stop()


def csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


def log_in(url: str, email: str, password: str) -> requests.Session:
    http = requests.Session()
    page = http.get(url + "/auth/entrar", timeout=30)
    assert page.status_code == 200
    resp = http.post(url + "/auth/entrar", data={"csrf_token": csrf(page.text), "email": email,
                                                 "password": password}, timeout=30)
    assert resp.status_code == 200 and "/e/" in resp.url, (resp.status_code, resp.url)
    return http


def register(http: requests.Session, url: str, slug: str, *, name: str, email: str) -> None:
    """Novo Usuário as the browser posts it: step 1 (Ativar › Envie agora, Avançar), step 2
    (one company, Concluir)."""
    form_url = f"{url}/e/{slug}/configuracoes/usuarios-de-clientes/novo"
    page = http.get(form_url, timeout=30)
    assert page.status_code == 200
    fields = {"name": name, "cpf": "", "phone": "", "email": email, "access": "now"}
    step2 = http.post(form_url, data={"csrf_token": csrf(page.text), "step": "1", **fields}, timeout=30)
    assert step2.status_code == 200 and "Passo 2 de 2" in step2.text, step2.text[-2000:]
    [company_id, *_] = COMPANY_RE.findall(step2.text)
    done = http.post(form_url, data={"csrf_token": csrf(step2.text), "step": "2", **fields,
                                     "company_ids": company_id}, timeout=30)
    assert done.status_code == 200 and "Usuário registrado." in done.text, done.text[-2000:]


def deliveries(engine) -> list[Delivery]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.recipient, Delivery.status, Delivery.attempts,
                                        Delivery.message_id, Delivery.template)))


def wait_until(predicate, *, timeout: float, what: str, state=None, poll: float = 0.2):
    """Poll observable state until `predicate()` is truthy; fail with `what` (and `state()`,
    what was observed last) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; last seen: {state()}" if state else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{seen}")
        time.sleep(poll)


def test_invitations_survive_an_smtp_outage(outage_product, smtp):
    product = outage_product
    slug = product.cli("create-firm", "--name", "Contabilidade Ômega", "--cnpj", cnpj("556677880001"),
                       "--admin-name", ADMIN[0], "--admin-email", ADMIN[1],
                       "--admin-password", ADMIN[2]).strip().splitlines()[-1]
    product.cli("create-company", "--firm", slug, "--name", "Comércio Exemplo Ltda", "--cnpj", cnpj("667788990001"))
    http = log_in(product.url, ADMIN[1], ADMIN[2])
    engine = make_engine(product.database_urls["notifier"])

    def state():
        return sorted((r.recipient, r.status, r.attempts) for r in deliveries(engine))
    emails = [f"cliente{i:02d}@outage.example" for i in range(N)]
    before, during, after = emails[:5], emails[5:15], emails[15:]
    for address in before:
        register(http, product.url, slug, name=f"Cliente {address[7:9]}", email=address)

    def sent(addresses):
        rows = {r.recipient: r for r in deliveries(engine)}
        received = smtp.messages_by_recipient()
        return all(a in rows and rows[a].status == "sent" and received.get(a) for a in addresses)

    wait_until(lambda: sent(before), timeout=60, what="the invitations sent before the outage", state=state)
    smtp.stop()
    for address in during:
        register(http, product.url, slug, name=f"Cliente {address[7:9]}", email=address)

    # The outage is seen: every invitation of that part failed at least twice (the first
    # attempt and at least one retry) and waits for its next attempt.
    def outage_retried():
        rows = {r.recipient: r for r in deliveries(engine)}
        return all(a in rows and rows[a].status == "retrying" and rows[a].attempts >= 2 for a in during)

    wait_until(outage_retried, timeout=90, what="the invitations sent during the outage to be retrying",
               state=state)
    smtp.start()
    for address in after:
        register(http, product.url, slug, name=f"Cliente {address[7:9]}", email=address)

    wait_until(lambda: sent(emails) and len(deliveries(engine)) == N, timeout=120,
               what="every invitation to be sent and received", state=state)
    rows = {r.recipient: r for r in deliveries(engine)}
    received = smtp.messages_by_recipient()
    assert set(rows) == set(emails)
    for address in emails:
        ids = {str(m["Message-ID"]) for m in received[address]}
        assert ids == {rows[address].message_id}, (address, ids)
        assert all("convidou você para o Portal do Cliente" in str(m["Subject"]) for m in received[address])
    assert all(rows[a].attempts == 1 for a in before)
    assert all(rows[a].attempts >= 2 for a in during)
    assert set(received) == set(emails)
    engine.dispose()

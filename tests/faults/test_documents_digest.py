"""The documents digest under faults, with the product running as processes against RabbitMQ (a
private vhost) and PostgreSQL: documents published for several clients, then the documents worker
SIGKILLed while their digests are due — and, apart, two documents workers running the digest job
at once. Either way each client gets exactly ONE e-mail listing the documents, counted at the SMTP
server after a quiet period longer than the digest job's interval (a second claim would have sent
a second e-mail by then); nothing is left pending; each digest has its Message-ID."""
from __future__ import annotations

import os
import re
import signal
import time
import types
import uuid

import pytest

from tests.conftest import link_in, text_of
from testsupport import csrf_token
from testsupport.guias import das_guia, make_cnpj

from ._chain import Staff, running_product, wait_until

pytestmark = pytest.mark.distributed

CLIENTS = 4
DOCUMENTS = 3
WINDOW_MINUTES = "0.05"    # BALCAO_DOCUMENTS_DIGEST_MINUTES: a 3-second window
QUIET_SECONDS = 25.0       # > the digest job's interval (15 s): a double claim would have been sent
PASSWORD = "Uma-senha-de-cliente-2026"


def _env():
    return {"BALCAO_DOCUMENTS_DIGEST_MINUTES": WINDOW_MINUTES}


@pytest.fixture
def product(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("digest-kill"), smtp_port=mailbox.port, tag="dig",
                         extra_env=_env()) as running:
        yield running


@pytest.fixture
def product_two_workers(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("digest-two"), smtp_port=mailbox.port, tag="dig",
                         extra_env=_env(), worker_processes={"documents": 2}) as running:
        yield running


def product_config(product):
    """The product's configuration as its processes load it (databases, var dir: the documents
    vault on the filesystem; keys: the documents master key)."""
    from services.common.config import load_config
    saved = {name: os.environ.get(name) for name in product.env}
    os.environ.update(product.env)
    try:
        return load_config()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def clients_with_logins(product, mailbox, staff: Staff, n: int) -> list[str]:
    """Register n client users of the staff's company (E-mail e portal: the defaults), each of whom
    accepts the invitation and creates a password, as a browser does; their e-mails."""
    import requests
    emails = staff.invite(n)
    for address in emails:
        message = mailbox.wait_for(to=address, subject_contains=f"Contabilidade {staff.tag}", timeout=90)
        http = requests.Session()
        page = http.get(link_in(message, "/convite/"), timeout=30)
        ticket = re.search(r'name="ticket" value="([^"]+)"', page.text)
        assert page.status_code == 200 and ticket, page.text[:500]
        done = http.post(product.url + "/auth/convite/registrar", timeout=30, data={
            "csrf_token": csrf_token(page.text), "ticket": ticket.group(1), "name": f"Cliente {address}",
            "password": PASSWORD, "password_confirmation": PASSWORD})
        assert done.status_code == 200, done.text[:500]
    firm_id = product.scalar("users", "SELECT id FROM firms WHERE slug = :slug", slug=staff.slug)
    wait_until(lambda: product.scalar(
        "documents", "SELECT count(*) FROM members WHERE firm_id = :firm AND role = 'client' AND status = 'active' "
                     "AND identity_id IS NOT NULL", firm=firm_id) == n,
        timeout=120, message="the clients' access never reached the documents service")
    return emails


def publish_documents(product, staff: Staff, n: int) -> list[str]:
    """The firm's admin publishes n guias into the company's Fiscal folder (the service's own
    functions, against the product's database and vault); their names."""
    from testsupport.documents import publish
    config = product_config(product)
    firm_id = product.scalar("users", "SELECT id FROM firms WHERE slug = :slug", slug=staff.slug)
    admin_id = product.scalar("auth", "SELECT id FROM identities WHERE email = :email",
                              email=f"admin-{staff.tag}@firma.example")
    admin = types.SimpleNamespace(identity_id=admin_id, name=f"Admin {staff.tag}")
    names = [f"DAS {staff.tag} {i}.pdf" for i in range(n)]
    for name in names:
        publish(config, firm_id=firm_id, company_id=uuid.UUID(staff.company_id), department_name="Fiscal",
                data=das_guia(make_cnpj(301), "10/2026", "20/12/2026", "99,90"), name=name, by=admin)
    from services.common.runtime import database
    database("documents", config).dispose()
    return names


def digest_emails(mailbox, emails) -> dict[str, list]:
    wanted = {e.lower() for e in emails}
    found: dict[str, list] = {e: [] for e in wanted}
    for message in list(mailbox.messages):
        to = str(message["To"]).lower()
        if to in wanted and "novos documentos" in str(message["Subject"]):
            found[to].append(message)
    return found


def assert_one_digest_each(product, mailbox, staff: Staff, emails: list[str], names: list[str]) -> None:
    wait_until(lambda: all(digest_emails(mailbox, emails).values()), timeout=120,
               message="not every client got the digest e-mail",
               state=lambda: {to: len(m) for to, m in digest_emails(mailbox, emails).items()})
    last = time.monotonic()
    wait_until(lambda: time.monotonic() - max(last, mailbox.last_arrival() or 0) >= QUIET_SECONDS,
               timeout=QUIET_SECONDS * 4, message="e-mails kept arriving", interval=0.5)
    received = digest_emails(mailbox, emails)
    assert {to: len(messages) for to, messages in received.items()} == {e.lower(): 1 for e in emails}
    for messages in received.values():
        body = text_of(messages[0])
        assert str(messages[0]["Subject"]) == f"Contabilidade {staff.tag} publicou {len(names)} novos documentos para você"
        assert all(f"- {name} — " in body for name in names), body
        assert f"/documentos/e/{staff.slug}/" in body
    firm_id = product.scalar("users", "SELECT id FROM firms WHERE slug = :slug", slug=staff.slug)
    wait_until(lambda: product.scalar("documents", "SELECT count(*) FROM digests WHERE firm_id = :firm AND "
                                                   "message_id IS NOT NULL", firm=firm_id) == len(emails),
               timeout=60, message="the digests never got their Message-ID back")
    assert product.scalar("documents", "SELECT count(*) FROM digests WHERE firm_id = :firm", firm=firm_id) == len(emails)
    assert product.scalar("documents", "SELECT count(*) FROM notifications WHERE firm_id = :firm AND emailed = false",
                          firm=firm_id) == 0
    assert set(product.rows("documents", "SELECT message_id FROM digests WHERE firm_id = :firm", firm=firm_id)) == {
        (str(messages[0]["Message-ID"]),) for messages in received.values()}


def test_the_documents_worker_killed_while_digests_are_due_sends_one_each(product, mailbox):
    staff = Staff(product, "digkill")
    emails = clients_with_logins(product, mailbox, staff, CLIENTS)
    names = publish_documents(product, staff, DOCUMENTS)
    firm_id = product.scalar("users", "SELECT id FROM firms WHERE slug = :slug", slug=staff.slug)
    wait_until(lambda: product.scalar("documents", "SELECT count(*) FROM notifications WHERE firm_id = :firm",
                                      firm=firm_id) == CLIENTS * DOCUMENTS,
               timeout=60, message="the publication never reached the clients")
    # the window passes; the kill lands as soon as the digest job has claimed something (often
    # part of the people), or, failing that, with every digest due and none claimed yet
    victim = product.stack.processes["documents-worker"]
    wait_until(lambda: product.scalar("documents", "SELECT count(*) FROM digests WHERE firm_id = :firm",
                                      firm=firm_id) > 0, timeout=60, interval=0.01,
               message="the digest job never ran")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    claimed = product.scalar("documents", "SELECT count(*) FROM digests WHERE firm_id = :firm", firm=firm_id)
    sent = sum(1 for messages in digest_emails(mailbox, emails).values() if messages)
    print(f"digests claimed when the worker died: {claimed} of {CLIENTS}; digest e-mails already received: {sent}")
    restarted = product.stack.restart("documents-worker")
    assert restarted.pid != victim.pid
    assert_one_digest_each(product, mailbox, staff, emails, names)


def test_two_documents_workers_send_one_digest_each(product_two_workers, mailbox):
    product = product_two_workers
    assert {"documents-worker", "documents-worker-2"} <= set(product.stack.processes)
    staff = Staff(product, "digtwo")
    emails = clients_with_logins(product, mailbox, staff, CLIENTS)
    names = publish_documents(product, staff, DOCUMENTS)
    assert_one_digest_each(product, mailbox, staff, emails, names)

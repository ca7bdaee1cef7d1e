"""A notifier worker keeps its SMTP connection open across e-mails (no TCP connect, EHLO, STARTTLS
and login per e-mail), and gets a new one when the server dropped it — without losing an e-mail
or sending one twice: each delivery keeps its own Message-ID, also on its retry."""
from __future__ import annotations

import dataclasses
import email
import email.policy
import threading
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from services.common.events import make_envelope
from services.common.messaging import handle_message
from services.notifier import consumers, models, services
from services.notifier.models import Delivery
from testsupport import count_queries

from .test_notifier import deliver, free_port, invitation_request


class Server:
    """An aiosmtpd server on a fixed port that records (connection, recipient, Message-ID) and can
    be stopped (dropping its connections) and started again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.received: list[tuple[int, str, str]] = []
        self.connections: set[int] = set()
        self._lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.received.append((id(session), envelope.rcpt_tos[0], str(message["Message-ID"])))
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self._lock:
            self.connections.add(id(session))
        session.host_name = hostname
        return responses

    def start(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def server():
    s = Server().start()
    yield s
    s.stop()
    services.smtp_connection(s.url).close()  # this thread's connection, for the next test


def test_one_connection_carries_several_emails(config, db, keyring, server):
    smtp_config = dataclasses.replace(config, smtp_url=server.url)
    sent = [deliver(smtp_config, db, invitation_request(keyring, recipient=f"pessoa{i}@example.com"))
            for i in range(3)]
    assert [d.status for d in sent] == ["sent"] * 3
    assert len(server.connections) == 1, "a new SMTP connection per e-mail"
    assert [(rcpt, mid) for _, rcpt, mid in server.received] == [
        (f"pessoa{i}@example.com", d.message_id) for i, d in enumerate(sent)]


def test_a_dropped_connection_is_replaced_before_the_next_email(config, db, keyring, server):
    """The server went away and came back while the worker was idle: the NOOP check finds the
    connection dead and the e-mail goes out on a new one, at its first attempt."""
    smtp_config = dataclasses.replace(config, smtp_url=server.url)
    first = deliver(smtp_config, db, invitation_request(keyring, recipient="antes@example.com"))
    server.stop()
    server.start()
    time.sleep(services.smtp_connection(server.url).idle_check + 0.2)
    second = deliver(smtp_config, db, invitation_request(keyring, recipient="depois@example.com"))
    assert (first.status, second.status) == ("sent", "sent")
    assert second.attempts == 1
    assert len(server.connections) == 2
    assert [rcpt for _, rcpt, _ in server.received] == ["antes@example.com", "depois@example.com"]


def test_a_connection_dropped_mid_burst_costs_one_retry_with_the_same_message_id(config, db, keyring, server):
    """Dropped between two e-mails sent back to back (no NOOP check): that e-mail's attempt fails
    as any temporary SMTP failure does, the next e-mail opens a new connection, and the retry sends
    the first one with its original Message-ID — each person gets exactly one e-mail."""
    smtp_config = dataclasses.replace(config, smtp_url=server.url)
    deliver(smtp_config, db, invitation_request(keyring, recipient="um@example.com"))
    server.stop()
    server.start()
    failed = deliver(smtp_config, db, invitation_request(keyring, recipient="dois@example.com"))
    after = deliver(smtp_config, db, invitation_request(keyring, recipient="tres@example.com"))
    assert failed.status == "retrying" and after.status == "sent"
    with db.begin() as session:  # its backoff is over
        session.execute(update(Delivery).where(Delivery.id == failed.id)
                        .values(next_attempt_at=services.utcnow() - timedelta(seconds=1)))
    assert consumers.retry_due_deliveries(smtp_config) == 1
    with db.begin() as session:
        retried = session.get(Delivery, failed.id)
        assert (retried.status, retried.attempts) == ("sent", 2)
    by_rcpt = {}
    for _, rcpt, mid in server.received:
        by_rcpt.setdefault(rcpt, []).append(mid)
    assert by_rcpt == {"um@example.com": [by_rcpt["um@example.com"][0]], "dois@example.com": [failed.message_id],
                       "tres@example.com": [after.message_id]}


def test_a_first_attempt_costs_a_fixed_number_of_statements(config, db, keyring, server):
    """Claim (its own transaction), send, outcome in the consumer's transaction: the delivery row
    is read once — the claim looks its idempotency key up, and the firm's profile, in one
    statement —, whatever the recipient; the outcome updates the delivery the claim created
    without reading it again."""
    smtp_config = dataclasses.replace(config, smtp_url=server.url)
    handler = consumers.HANDLERS["notification.email_requested"]
    for i in range(2):
        envelope = make_envelope("notification.email_requested",
                                 invitation_request(keyring, recipient=f"conta{i}@example.com"), correlation_id="t")
        with count_queries(config, "notifier") as counted:
            handle_message(db, models.processed, "notifier", handler, envelope, config=smtp_config)
        reads = [s for s in counted.statements if s.lstrip().upper().startswith("SELECT") and "deliveries" in s]
        assert len(reads) == 1 and "idempotency_key" in reads[0], reads
        on_deliveries = [s.split()[0].upper() for s in counted.statements if "deliveries" in s]
        assert on_deliveries == ["SELECT", "INSERT", "UPDATE"], counted.statements
        # the firm's profile is read by that same SELECT
        assert "firm_profiles" in reads[0] and sum("firm_profiles" in s for s in counted.statements) == 1
    assert [r[1] for r in server.received] == ["conta0@example.com", "conta1@example.com"]

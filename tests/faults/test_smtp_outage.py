"""Fault test: the SMTP server goes away in the middle of a batch of invitations and comes
back. Against the distributed topology (gunicorn + worker processes, RabbitMQ, PostgreSQL):
every invitation e-mail arrives exactly once (counted per person after a quiet period), under
the Message-ID of its delivery record, and nothing is left behind (the checks of
`_chain.assert_every_invitation_delivered_once`: every Delivery row "sent", the broker drained,
every invitation shown as sent to staff). Nothing is in flight when the server stops (the
first part is sent and received before), so no copy is allowed.

The notifier's retry loop (`PERIODIC` in services/notifier/consumers.py, run by
`balcao worker notifier`) is what brings the deliveries that failed during the outage
back; the retry base is shortened to 0.5 s so the test takes seconds, not minutes.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from services.common.db import make_engine
from services.notifier.models import Delivery
from tests.conftest import Staff, SwitchableSmtp, running_product, wait_until

from ._chain import assert_every_invitation_delivered_once

pytestmark = pytest.mark.distributed

N = 20


@pytest.fixture(scope="module")
def smtp():
    server = SwitchableSmtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def outage_product(smtp, tmp_path_factory):
    """The distributed product with SMTP at `smtp` and fast retries."""
    with running_product(tmp_path_factory.mktemp("smtp-outage"), smtp_port=smtp.port, tag="smtp",
                         extra_env={"BALCAO_SMTP_RETRY_BASE_SECONDS": "0.5",
                                    "BALCAO_SMTP_MAX_ATTEMPTS": "10"}) as running:
        yield running


def deliveries(engine) -> list[Delivery]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.recipient, Delivery.status, Delivery.attempts,
                                        Delivery.message_id, Delivery.template)))


def test_invitations_survive_an_smtp_outage(outage_product, smtp):
    product = outage_product
    staff = Staff(product, "omega")
    engine = make_engine(product.database_urls["notifier"])

    def state():
        return sorted((r.recipient, r.status, r.attempts) for r in deliveries(engine))
    emails = [f"cliente{i:02d}@outage.example" for i in range(N)]
    before, during, after = emails[:5], emails[5:15], emails[15:]
    staff.invite(len(before), emails=before)

    def sent(addresses):
        rows = {r.recipient: r for r in deliveries(engine)}
        received = smtp.mailbox.by_recipient()
        return all(a in rows and rows[a].status == "sent" and received.get(a) for a in addresses)

    wait_until(lambda: sent(before), timeout=60, message="the invitations sent before the outage", state=state)
    smtp.stop()
    staff.invite(len(during), emails=during)

    # The outage is seen: every invitation of that part failed at least twice (the first
    # attempt and at least one retry) and waits for its next attempt.
    def outage_retried():
        rows = {r.recipient: r for r in deliveries(engine)}
        return all(a in rows and rows[a].status == "retrying" and rows[a].attempts >= 2 for a in during)

    wait_until(outage_retried, timeout=90, message="the invitations sent during the outage to be retrying",
               state=state)
    smtp.start()
    staff.invite(len(after), emails=after)

    wait_until(lambda: sent(emails) and len(deliveries(engine)) == N, timeout=120,
               message="every invitation to be sent and received", state=state)
    per_person = assert_every_invitation_delivered_once(product, smtp.mailbox, staff)
    rows = {r.recipient: r for r in deliveries(engine)}
    received = smtp.mailbox.by_recipient()
    assert set(rows) == set(emails)
    for address in emails:
        assert per_person[address] == [rows[address].message_id], (address, per_person[address])
        assert all("convidou você para o Portal do Cliente" in str(m["Subject"]) for m in received[address])
    assert all(rows[a].attempts == 1 for a in before)
    assert all(rows[a].attempts >= 2 for a in during)
    assert set(received) == set(emails)
    engine.dispose()

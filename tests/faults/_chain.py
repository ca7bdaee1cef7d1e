"""Helpers of the fault tests: the product running as separate processes (deploy/stack.py)
against the machine's PostgreSQL and a private vhost of its RabbitMQ, driven over HTTP like a
browser does, and the checks every scenario ends with ("every invitation e-mail arrived exactly
once, nothing stuck"). No mocks: real gunicorn, real workers, real broker, real SMTP server."""
from __future__ import annotations

import subprocess

from services.common.config import SERVICES
from tests.conftest import RunningProduct, Staff, running_product, wait_until  # noqa: F401 (re-exported)

BATCH = 30
RABBITMQCTL = "/usr/sbin/rabbitmqctl"


def messages_to(mailbox, recipients) -> list:
    wanted = set(recipients)
    with mailbox._cond:
        return [m for m in mailbox.messages if any(r in str(m["To"]) for r in wanted)]


def _stuck(product: RunningProduct) -> dict:
    stuck = {svc: product.scalar(svc, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
             for svc in SERVICES}
    stuck["deliveries not sent"] = product.scalar("notifier", "SELECT count(*) FROM deliveries WHERE status <> 'sent'")
    return {k: v for k, v in stuck.items() if v}


def assert_every_invitation_delivered_once(product: RunningProduct, mailbox, staff: Staff, *, timeout: float = 120,
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

"""Helpers of the fault tests: the product running as separate processes (deploy/stack.py)
against PostgreSQL and a private vhost of a RabbitMQ, driven over HTTP like a browser does, and
the checks every scenario ends with. No mocks: real gunicorn, real workers, real broker, real
SMTP server.

The checks, in order (`assert_every_invitation_delivered_once`):
1. every invited person got an e-mail;
2. nothing is stuck: every outbox row published, every notifier delivery "sent";
3. the broker is drained: in the run's vhost no queue holds a ready or an unacknowledged
   message (the `.retry` queues included), and the dead-letter queue holds only what the
   scenario put there on purpose;
4. the users service shows every invitation as sent (what staff see on the list and the
   user's page: `services.users.queries.invitation_state`);
5. a quiet period passed after the last e-mail arrived (a late duplicate would have arrived);
6. then, per person: exactly one e-mail, one Message-ID per invitation — or two copies of the
   same Message-ID for an invitation whose e-mail was caught in the crash window (see
   `FaultMoment.crash_window`), never more, never a different Message-ID.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import types
from collections.abc import Collection

from services.common.config import SERVICES
from tests.conftest import RunningProduct, Staff, running_product, wait_until  # noqa: F401 (re-exported)
from testsupport.infra import queue_counts, vhost_of

BATCH = 30
QUIET_SECONDS = 5.0  # > the notifier's retry loop (1 s) and the outbox relay's poll (1 s), several times over


# --------------------------------------------------------------------------- a batch under way

class Batch:
    """Staff registering `emails` one after the other (as the staff page posts them) in a thread
    of its own, so that a fault can land while the batch is under way."""

    def __init__(self, staff: Staff, emails: list[str]):
        self.staff, self.emails = staff, emails
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.staff.invite(len(self.emails), emails=self.emails)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> Batch:
        self._thread.start()
        return self

    def join(self, timeout: float = 180) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the staff's batch never finished posting"
        if self.error is not None:
            raise self.error


def received_by(mailbox, addresses) -> set[str]:
    wanted = {a.lower() for a in addresses}
    return {to for _at, to, _mid in mailbox.received() if to in wanted}


@dataclasses.dataclass
class FaultMoment:
    """What was true when the fault hit."""

    at: float                                 # time.monotonic()
    received: set[str]                        # who of the batch already had their e-mail
    in_flight: dict[str, str]                 # Message-ID → recipient of deliveries not committed "sent"
    crash_window: set[str] = dataclasses.field(default_factory=set)

    def assert_mid_batch(self, batch_size: int) -> None:
        assert 0 < len(self.received) < batch_size, \
            f"the fault did not hit mid-batch: {len(self.received)} of {batch_size} e-mails had arrived"


def fault_moment(product: RunningProduct, mailbox, emails) -> FaultMoment:
    """Call right after the fault. `in_flight`: the notifier's deliveries whose attempt was under
    way (claimed, not committed as sent) — with the notifier dead, frozen."""
    rows = product.rows("notifier", "SELECT message_id, recipient FROM deliveries WHERE status = 'queued'")
    return FaultMoment(at=time.monotonic(), received=received_by(mailbox, emails),
                       in_flight={mid: to for mid, to in rows})


def crash_window_hit(moment: FaultMoment, mailbox, restarted_at: float) -> set[str]:
    """The Message-IDs the SMTP server had accepted although their delivery was not committed
    when the notifier died: exactly the e-mails that may legitimately arrive a second time (no
    transaction spans SMTP). Empty when the kill landed anywhere else."""
    return {mid for at, _to, mid in mailbox.received() if mid in moment.in_flight and at < restarted_at}


# --------------------------------------------------------------------------- the final checks

def _stuck(product: RunningProduct) -> dict:
    stuck = {svc: product.scalar(svc, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
             for svc in SERVICES}
    stuck["deliveries not sent"] = product.scalar("notifier", "SELECT count(*) FROM deliveries WHERE status <> 'sent'")
    return {k: v for k, v in stuck.items() if v}


def queues(product: RunningProduct) -> dict[str, tuple[int, int]]:
    """Every queue of the run's vhost → (messages ready, messages unacknowledged)."""
    found = queue_counts(product.broker_url, product.rabbitmqctl)
    assert found, "no queue listed in the run's vhost"
    return found


def classic_queues(product: RunningProduct) -> list[str]:
    """The queues of the run's vhost that are not quorum queues (the faults are meant to hit
    the replicated queues the product declares)."""
    status, out = product.rabbitmqctl("-q", "list_queues", "-p", vhost_of(product.broker_url), "name", "type",
                                      "--no-table-headers")
    assert status == 0, out
    rows = [line.split() for line in out.splitlines()]
    return [row[0] for row in rows if len(row) == 2 and row[1] != "quorum"]


def _not_drained(product: RunningProduct, dead_letters: int) -> dict:
    from services.common import events
    problems = {}
    for name, (ready, unacked) in queues(product).items():
        expected_ready = dead_letters if name == events.DEAD_LETTER_QUEUE else 0
        if (ready, unacked) != (expected_ready, 0):
            problems[name] = {"ready": ready, "unacked": unacked, "expected ready": expected_ready}
    return problems


def users_not_showing_sent(product: RunningProduct, staff: Staff) -> dict[str, str | None]:
    """The invited people whose invitation the users service does not show as sent (the state the
    staff list and the user's page render)."""
    from services.users.queries import invitation_state
    rows = product.rows("users", "SELECT cu.email, cu.status, cu.invitation_expires_at, cu.delivery_error, "
                                 "cu.delivery_error_permanent, cu.invitation_sent_at FROM client_users cu "
                                 "JOIN firms f ON f.id = cu.firm_id WHERE f.slug = :slug", slug=staff.slug)
    shown = {}
    for email, status, expires, error, permanent, sent_at in rows:
        cu = types.SimpleNamespace(status=status, invitation_expires_at=_aware(expires), delivery_error=error,
                                   delivery_error_permanent=permanent, invitation_sent_at=_aware(sent_at))
        shown[email] = invitation_state(cu).code  # type: ignore[arg-type]  # the columns it reads
    return {email: shown.get(email.lower()) for email in staff.invited if shown.get(email.lower()) != "sent"}


def _aware(value):
    from datetime import UTC
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def assert_every_invitation_delivered_once(product: RunningProduct, mailbox, staff: Staff, *, timeout: float = 150,
                                           crash_window: Collection[str] = frozenset(), dead_letters: int = 0,
                                           quiet_seconds: float = QUIET_SECONDS):
    """Every invited person got exactly one invitation e-mail, nothing is stuck anywhere, the
    users service shows every invitation as sent (the module docstring lists the checks).

    `crash_window`: the Message-IDs that may arrive twice (`crash_window_hit`): an e-mail the
    SMTP server accepted just before the notifier died, before its delivery record committed, is
    sent again under the same Message-ID. `dead_letters`: what the scenario dead-lettered on purpose."""
    expected = [a.lower() for a in staff.invited]
    wait_until(lambda: set(expected) <= received_by(mailbox, expected), timeout=timeout,
               message="not every invitation e-mail arrived",
               state=lambda: sorted(set(expected) - received_by(mailbox, expected)))
    wait_until(lambda: not _stuck(product), timeout=timeout, message="something is stuck",
               state=lambda: _stuck(product))
    wait_until(lambda: not _not_drained(product, dead_letters), timeout=min(timeout, 60),
               message="the broker still holds messages", state=lambda: _not_drained(product, dead_letters))
    wait_until(lambda: not users_not_showing_sent(product, staff), timeout=min(timeout, 60),
               message="the users service does not show every invitation as sent",
               state=lambda: users_not_showing_sent(product, staff))
    wait_until(lambda: time.monotonic() - (mailbox.last_arrival() or 0) >= quiet_seconds,
               timeout=timeout, message="e-mails kept arriving", interval=min(0.5, quiet_seconds / 4))
    assert not _not_drained(product, dead_letters)  # nothing woke up during the quiet period
    assert not classic_queues(product), f"not quorum queues: {classic_queues(product)}"

    received = mailbox.received()
    per_person = {to: [mid for _at, t, mid in received if t == to] for to in expected}
    tagged = {to for _at, to, _mid in received if f"-{staff.tag}@" in to}
    assert tagged <= set(expected), f"e-mails to people nobody invited: {sorted(tagged - set(expected))}"
    several_ids = {to: ids for to, ids in per_person.items() if len(set(ids)) != 1}
    assert not several_ids, f"an invitation sent under several Message-IDs (or none): {several_ids}"
    assert len({ids[0] for ids in per_person.values()}) == len(expected), "two invitations share a Message-ID"
    repeated = {to: len(ids) for to, ids in per_person.items()
                if len(ids) > (2 if ids[0] in crash_window else 1)}
    assert not repeated, f"e-mails sent more than once (crash window: {sorted(crash_window)}): {repeated}"
    subjects = [str(m["Subject"]) for m in mailbox.messages if any(a in str(m["To"]).lower() for a in expected)]
    assert all(staff.tag in subject for subject in subjects), subjects
    return per_person


def rabbitmqctl(product: RunningProduct, *args: str) -> None:
    status, out = product.rabbitmqctl(*args)
    assert status == 0, out

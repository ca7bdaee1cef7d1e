"""Faults on the consumer side, with the product running as processes against RabbitMQ (a
private vhost) and PostgreSQL: a worker killed with SIGKILL while a batch of invitations is under
way, then restarted by the runner; two notifier workers consuming the same queues. Every scenario
ends with the checks of `_chain.assert_every_invitation_delivered_once`: one e-mail per person
(counted after a quiet period), one Message-ID per invitation, nothing stuck in the outboxes,
the deliveries or the broker, every invitation shown as sent to staff."""
from __future__ import annotations

import signal
import time

import pytest

from ._chain import (
    BATCH,
    Batch,
    Staff,
    assert_every_invitation_delivered_once,
    crash_window_hit,
    fault_moment,
    received_by,
    running_product,
    wait_until,
)

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def product(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("consumer-faults"), smtp_port=mailbox.port, tag="flt") as running:
        yield running


def handled_count(product, worker: str) -> float:
    """Messages a worker process consumed, from its own metrics port (it is up and working)."""
    import urllib.request
    port = product.stack.metrics_ports[worker]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("balcao_messages_consumed_total{"))


@pytest.mark.parametrize("worker", ["notifier-worker", "invitations-worker"])
def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(product, mailbox, worker):
    staff = Staff(product, "kill-" + worker.split("-")[0])
    emails = staff.addresses(BATCH)
    batch = Batch(staff, emails).start()
    wait_until(lambda: received_by(mailbox, emails), timeout=60, message="the batch never started flowing")
    victim = product.stack.processes[worker]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    moment = fault_moment(product, mailbox, emails)
    moment.assert_mid_batch(BATCH)

    batch.join()  # the staff kept working; the chain is broken at the killed worker meanwhile
    restarted_at = time.monotonic()
    restarted = product.stack.restart(worker)
    assert restarted.pid != victim.pid
    # SIGKILL can land between the SMTP server's "250 OK" and the commit of the delivery record:
    # that e-mail is sent again under the same Message-ID — allowed only if that is what happened.
    window = crash_window_hit(moment, mailbox, restarted_at) if worker == "notifier-worker" else set()
    assert_every_invitation_delivered_once(product, mailbox, staff, crash_window=window)
    # the restarted process did the work after the fault (it consumed messages)
    assert restarted.poll() is None and handled_count(product, worker) > 0


@pytest.fixture(scope="module")
def product_two_notifiers(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("two-notifiers"), smtp_port=mailbox.port, tag="flt",
                         worker_processes={"notifier": 2}) as running:
        yield running


def test_two_notifier_workers_send_every_email_once(product_two_notifiers, mailbox):
    product = product_two_notifiers
    assert {"notifier-worker", "notifier-worker-2"} <= set(product.stack.processes)
    staff = Staff(product, "dois")
    staff.invite(BATCH)
    assert_every_invitation_delivered_once(product, mailbox, staff)
    # both workers took part: each one's metrics count handled messages of the queue
    import urllib.request
    handled: dict[str, float] = {}
    for name in ("notifier-worker", "notifier-worker-2"):
        port = product.stack.metrics_ports[name]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        handled[name] = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                            if line.startswith("balcao_messages_consumed_total{")
                            and 'queue="notifier.notification.email_requested"' in line)
    assert sum(handled.values()) >= BATCH and all(handled.values()), handled


def test_the_request_id_follows_the_invitation_through_every_hop(product_two_notifiers, mailbox):
    """One X-Request-ID from the staff's click to the e-mail: in the JSON log lines of the users
    relay, the invitations consumer and relay, and the notifier consumer."""
    import json
    product = product_two_notifiers
    staff = Staff(product, "rastreio")
    rid = "trace-" + staff.tag
    staff.invite(1, request_id=rid)
    assert_every_invitation_delivered_once(product, mailbox, staff)

    def lines_with_rid():
        found = {}
        for path in product.stack.logs_dir.glob("*-worker*.log"):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("correlation_id") == rid:
                    found.setdefault(record["service"], []).append(record["message"])
        return found

    found = lines_with_rid()
    assert any(m.startswith("published client_user.access_activated") for m in found.get("users", [])), found
    assert any(m.startswith("handled client_user.access_activated") for m in found.get("invitations", [])), found
    assert any(m.startswith("published notification.email_requested") for m in found.get("invitations", [])), found
    assert any(m.startswith("handled notification.email_requested") for m in found.get("notifier", [])), found
    assert not any(staff.invited[0] in m for ms in found.values() for m in ms)  # no body in the logs

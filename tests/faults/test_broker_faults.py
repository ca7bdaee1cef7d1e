"""Faults on the broker side, with the product running as processes against RabbitMQ (a private
vhost) and PostgreSQL: the broker stops while a batch of invitations is under way and comes
back; malformed messages land in the dead-letter queue while the consumers go on. Every
scenario ends with the checks of `_chain.assert_every_invitation_delivered_once`: one e-mail
per person (counted after a quiet period), nothing stuck in the outboxes, the deliveries or the
broker, every invitation shown as sent to staff."""
from __future__ import annotations

import pytest
from kombu import Producer

from services.common import events, messaging

from ._chain import (
    BATCH,
    Batch,
    Staff,
    assert_every_invitation_delivered_once,
    fault_moment,
    rabbitmqctl,
    received_by,
    running_product,
    wait_until,
)

pytestmark = pytest.mark.distributed


@pytest.fixture
def product(mailbox, tmp_path_factory):
    """A product of its own for each scenario: what a broker restart leaves behind (connections
    being re-established, a delivery redelivered) never weighs on the next scenario's checks."""
    with running_product(tmp_path_factory.mktemp("broker-faults"), smtp_port=mailbox.port, tag="flt") as running:
        yield running


def test_broker_restart_in_the_middle_of_a_batch(product, mailbox):
    staff = Staff(product, "reinicio")
    # long enough that `rabbitmqctl stop_app` (an Erlang VM starting: a second or two) lands while
    # the batch is still flowing, however fast the chain is that day
    first = staff.addresses(3 * BATCH)
    batch = Batch(staff, first).start()
    wait_until(lambda: received_by(mailbox, first), timeout=60, message="the batch never started flowing")
    rabbitmqctl(product, "stop_app")
    try:
        fault_moment(product, mailbox, first).assert_mid_batch(len(first))
        # The staff keep working while the broker is down: the events wait in the outboxes.
        batch.join()
        staff.invite(10)
        stuck = product.scalar("users", "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert stuck > 0, "the broker was down, yet every users event claims to be published"
    finally:
        rabbitmqctl(product, "start_app")
    rabbitmqctl(product, "await_startup")
    assert len(staff.invited) == 3 * BATCH + 10
    assert_every_invitation_delivered_once(product, mailbox, staff, timeout=180)


def test_malformed_messages_are_dead_lettered_and_the_consumer_goes_on(product, mailbox):
    queue = events.queue_name("notifier", "notification.email_requested")
    with messaging.broker_connection(product.broker_url) as conn:
        producer = Producer(conn.default_channel)
        producer.publish(b"\x00 not json at all", exchange="", routing_key=queue,
                         content_type="application/json", content_encoding="utf-8", delivery_mode=2)
        producer.publish({"id": "not-a-uuid", "type": "notification.email_requested", "payload": {}},
                         exchange="", routing_key=queue, serializer="json", delivery_mode=2)

    def dead_letters():
        letters = messaging.list_dead_letters(product.broker_url)
        return letters if len(letters) >= 2 else None

    letters = wait_until(dead_letters, timeout=60, message="the malformed messages never reached the dead letters")
    assert {d.queue for d in letters} == {queue}
    assert all(d.reason.startswith("invalid") for d in letters)
    assert any("undecodable" in d.reason for d in letters)
    listed = product.cli("dead-letters", "list")
    assert all(d.id in listed for d in letters) and queue in listed

    # The same consumer keeps consuming: a whole batch goes through afterwards.
    staff = Staff(product, "malformada")
    staff.invite(BATCH)
    assert_every_invitation_delivered_once(product, mailbox, staff, dead_letters=2)  # nothing of the batch died

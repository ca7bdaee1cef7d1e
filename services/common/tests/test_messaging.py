"""The messaging plumbing on a real kombu transport (the embedded in-memory broker, or the
RabbitMQ of this run — testsupport.infra): outbox → relay → broker → consumer → handler, once."""
import threading
import uuid

import pytest
from kombu import Producer
from sqlalchemy import func, select

from services.common import events, messaging
from services.common.runtime import database
from services.invitations import models as inv_models
from testsupport import backends, private_vhost, wait_until

BROKER = "memory://"  # a private vhost of this run's RabbitMQ when there is one (the broker is shared)


@pytest.fixture(scope="module", autouse=True)
def _broker_url():
    global BROKER
    with private_vhost(backends().broker_url or "memory://") as url:
        BROKER = url
        yield url


def _link_verified_payload():
    return {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "carlos@example.com"}


@pytest.fixture
def purge_queues():
    with messaging.broker_connection(BROKER) as conn:
        messaging.declare_topology(conn)
        for q in messaging.all_queues():
            q.bind(conn.default_channel).purge()
    yield


def _consumed(queue: str) -> dict[str, float]:
    """What the consumer workers of this process did with the messages of `queue`, by outcome
    (the balcao_messages_consumed counter an operator scrapes)."""
    from prometheus_client import REGISTRY
    return {outcome: REGISTRY.get_sample_value("balcao_messages_consumed_total",
                                               {"service": "invitations", "queue": queue, "outcome": outcome}) or 0.0
            for outcome in (messaging.Outcome.HANDLED, messaging.Outcome.DUPLICATE)}


def _processed_count(db):
    with db.begin() as s:
        return s.execute(select(func.count()).select_from(inv_models.processed)).scalar_one()


def test_outbox_event_reaches_its_handler_exactly_once(config, purge_queues):
    db = database("invitations", config)
    seen = []
    handled = threading.Event()

    def handler(payload, ctx):
        seen.append((payload["invitation_id"], ctx.envelope["correlation_id"]))

    worker = messaging.ConsumerWorker(
        service="invitations", db=db, processed=inv_models.processed,
        handlers={**{e: (lambda p, c: None) for e in events.consumed_by("invitations")}, "link.verified": handler},
        broker_url=BROKER, on_handled=lambda etype, env: handled.set() if etype == "link.verified" else None)
    relay = messaging.OutboxRelay(db, inv_models.outbox, BROKER, poll_interval=0.1)
    threads = [threading.Thread(target=t.run, daemon=True) for t in (worker, relay)]
    for t in threads:
        t.start()
    try:
        assert worker.ready.wait(10)
        payload = _link_verified_payload()
        token = messaging.correlation_id_var.set("req-123")
        try:
            with db.begin() as s:
                envelope = messaging.record_event(s, inv_models.outbox, "link.verified", payload)
        finally:
            messaging.correlation_id_var.reset(token)
        assert handled.wait(10), "the event never reached its handler"
        assert seen == [(uuid.UUID(payload["invitation_id"]), "req-123")]

        # The same message delivered again (at-least-once): the worker takes it, and it has no
        # second effect. Asserted only once the worker has dealt with it.
        queue = events.queue_name("invitations", "link.verified")
        before = _consumed(queue)
        with messaging.broker_connection(BROKER) as conn:
            messaging.publish_envelope(Producer(conn.default_channel), envelope)
        after = wait_until(lambda: (lambda now: now if sum(now.values()) > sum(before.values()) else None)(
            _consumed(queue)), timeout=10, message="the duplicate never reached the worker")
        assert after[messaging.Outcome.DUPLICATE] == before[messaging.Outcome.DUPLICATE] + 1, (before, after)
        assert after[messaging.Outcome.HANDLED] == before[messaging.Outcome.HANDLED], (before, after)
        assert len(seen) == 1
        outcome, _ = messaging.handle_message(db, inv_models.processed, "invitations", handler, envelope)
        assert outcome == messaging.Outcome.DUPLICATE
        assert _processed_count(db) == 1
        with db.begin() as s:
            assert s.execute(select(inv_models.outbox.c.published_at)).scalar_one() is not None
    finally:
        worker.stop()
        relay.stop()
        for t in threads:
            t.join(5)


def test_malformed_message_goes_to_the_dead_letter_queue_with_its_reason(config, purge_queues):
    db = database("invitations", config)
    worker = messaging.ConsumerWorker(
        service="invitations", db=db, processed=inv_models.processed,
        handlers={e: (lambda p, c: None) for e in events.consumed_by("invitations")}, broker_url=BROKER)
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    try:
        assert worker.ready.wait(10)
        bad = {"id": str(uuid.uuid4()), "type": "link.verified", "version": 1,
               "occurred_at": "2026-01-01T00:00:00+00:00", "correlation_id": "x",
               "payload": {"invitation_id": "not-a-uuid"}}
        with messaging.broker_connection(BROKER) as conn:
            messaging.publish_envelope(Producer(conn.default_channel), bad)
            dlq = messaging.dead_letter_queue().bind(conn.default_channel)
            message = None
            for _ in range(200):
                message = dlq.get(no_ack=True)
                if message:
                    break
                threading.Event().wait(0.05)
        assert message is not None, "malformed message not dead-lettered"
        assert message.headers["x-balcao-queue"] == "invitations.link.verified"
        assert "invitation_id" in message.headers["x-balcao-reason"]
        assert _processed_count(db) == 0
    finally:
        worker.stop()
        t.join(5)


def test_a_burst_of_malformed_messages_is_dead_lettered_and_every_one_acknowledged(config, purge_queues):
    """Dead-lettering waits for the broker's confirm; deliveries arriving meanwhile must not run
    inside that wait (a confirm covering two publishes would then leave the first delivery
    unacknowledged for good, held by the worker, counted by the broker)."""
    db = database("invitations", config)
    worker = messaging.ConsumerWorker(
        service="invitations", db=db, processed=inv_models.processed,
        handlers={e: (lambda p, c: None) for e in events.consumed_by("invitations")}, broker_url=BROKER)
    queue = events.queue_name("invitations", "link.verified")
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    try:
        assert worker.ready.wait(10)
        with messaging.broker_connection(BROKER) as conn:
            producer = Producer(conn.default_channel)
            for i in range(40):
                if i % 2:
                    producer.publish(b"\x00 not json", exchange="", routing_key=queue,
                                     content_type="application/json", content_encoding="utf-8")
                else:
                    producer.publish({"id": "not-a-uuid", "payload": {}}, exchange="", routing_key=queue,
                                     serializer="json")
        wait_until(lambda: len(messaging.list_dead_letters(BROKER)) >= 40, timeout=30,
                   message="not every malformed message was dead-lettered",
                   state=lambda: len(messaging.list_dead_letters(BROKER)))
        if messaging.is_amqp(BROKER):
            from testsupport.infra import queue_counts
            wait_until(lambda: queue_counts(BROKER).get(queue) == (0, 0), timeout=15,
                       message="the worker holds deliveries it never acknowledged",
                       state=lambda: queue_counts(BROKER).get(queue))
    finally:
        worker.stop()
        t.join(5)


def test_handlers_match_the_catalogue():
    from services.common.config import SERVICES
    from services.common.runtime import service_module
    for svc in SERVICES:
        assert set(service_module(svc, "consumers").HANDLERS) == events.consumed_by(svc), svc


@pytest.mark.distributed
def test_a_commit_in_another_process_wakes_the_relay_at_once(config):
    """On PostgreSQL the web process commits and the worker process relays: the commit's NOTIFY
    wakes the relay, so an event does not wait for the next poll (here: a 60 s poll)."""
    from services.common.db import Database
    url = config.database_url("invitations")
    writer = Database(url, service="invitations")       # another engine, as another process has
    relay_db = Database(url, service="invitations")
    relay = messaging.OutboxRelay(relay_db, inv_models.outbox, BROKER, poll_interval=60)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        threading.Event().wait(1.0)  # let the relay publish what is pending and start listening
        with writer.begin() as s:
            envelope = messaging.record_event(s, inv_models.outbox, "link.verified", _link_verified_payload())
        published = None
        for _ in range(100):
            with writer.begin() as s:
                published = s.execute(select(inv_models.outbox.c.published_at).where(
                    inv_models.outbox.c.id == envelope["id"])).scalar_one()
            if published is not None:
                break
            threading.Event().wait(0.05)
        assert published is not None, "the relay was not woken by the other engine's commit"
    finally:
        relay.stop()
        thread.join(5)
        writer.dispose()
        relay_db.dispose()

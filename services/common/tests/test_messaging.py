"""The messaging plumbing on a real kombu transport (the embedded in-memory broker, or the
RabbitMQ of this run — testsupport.infra): outbox → relay → broker → consumer → handler, once."""
import threading
import uuid

import pytest
from kombu import Producer, Queue
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


# --------------------------------------------------------------------------- batched publisher confirms


def _pending_events(db, n: int) -> list[dict]:
    with db.begin() as s:
        return [messaging.record_event(s, inv_models.outbox, "link.verified", _link_verified_payload())
                for _ in range(n)]


def _published_ids(db) -> set[str]:
    with db.begin() as s:
        return {r.id for r in s.execute(select(inv_models.outbox.c.id).where(
            inv_models.outbox.c.published_at.is_not(None)))}


@pytest.mark.distributed
def test_the_relay_confirms_a_batch_at_once_and_marks_exactly_the_acked_rows(config, purge_queues):
    """On RabbitMQ the relay publishes its whole batch, then waits once for the publisher confirms;
    a row the broker refused (nack: here a full queue with overflow=reject-publish) stays
    unpublished and goes out with a later batch, once the broker takes it."""
    if not messaging.is_amqp(BROKER):
        pytest.skip("publisher confirms are RabbitMQ's")
    db = database("invitations", config)
    full = Queue("balcao.test.full." + uuid.uuid4().hex[:6], exchange=messaging.exchange(), routing_key="link.verified",
                 queue_arguments={"x-max-length": 2, "x-overflow": "reject-publish"}, auto_delete=False)
    with messaging.broker_connection(BROKER, confirm_each=False) as conn:
        messaging.declare_topology(conn)
        full.bind(conn.channel()).declare()
        try:
            producer = Producer(conn.default_channel)
            confirms = messaging.BatchConfirms(conn, conn.default_channel)
            relay = messaging.OutboxRelay(db, inv_models.outbox, BROKER, batch=200)
            envelopes = _pending_events(db, 5)
            with pytest.raises(messaging.PublishRefused):  # reported: the relay backs off
                relay.publish_pending(producer, confirms)
            # The first two fit in the full-at-two queue: acked and marked; the other three were nacked.
            assert _published_ids(db) == {e["id"] for e in envelopes[:2]}
            full.bind(conn.channel()).purge()
            with pytest.raises(messaging.PublishRefused):  # room for two of the three again
                relay.publish_pending(producer, confirms)
            assert _published_ids(db) == {e["id"] for e in envelopes[:4]}
            full.bind(conn.channel()).purge()
            assert relay.publish_pending(producer, confirms) == 1
            assert _published_ids(db) == {e["id"] for e in envelopes}
            assert relay.publish_pending(producer, confirms) == 0
        finally:
            full.bind(conn.channel()).delete()


@pytest.mark.distributed
def test_the_relay_publishes_more_than_a_batch_each_once(config, purge_queues):
    """The running relay (batched confirms) takes 250 rows in batches of 100: every event reaches
    its queue exactly once and every row is marked published."""
    if not messaging.is_amqp(BROKER):
        pytest.skip("publisher confirms are RabbitMQ's")
    db = database("invitations", config)
    envelopes = _pending_events(db, 250)
    relay = messaging.OutboxRelay(db, inv_models.outbox, BROKER, poll_interval=0.05, batch=100)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(_published_ids(db)) == 250 or None, timeout=30,
                   message="the relay did not publish the 250 rows")
    finally:
        relay.stop()
        thread.join(5)
    queue = events.queue_name("invitations", "link.verified")
    received = []
    with messaging.broker_connection(BROKER) as conn:
        bound = Queue(queue, durable=True).bind(conn.channel())
        while (message := bound.get(no_ack=True)) is not None:
            received.append(message.payload["id"])
    assert sorted(received) == sorted(e["id"] for e in envelopes)


def test_batch_confirms_settle_multiple_acks_and_nacks():
    """Delivery tags count the channel's publishes from 1; an ack or nack with `multiple` settles
    every tag up to its own."""

    class Channel:
        def __init__(self):
            self.events = {"basic_ack": set(), "basic_nack": set()}
            self.selected = False

        def confirm_select(self):
            self.selected = True

    class Connection:
        def __init__(self, answers):
            self.answers = answers

        def drain_events(self, timeout=None):
            if not self.answers:
                raise TimeoutError
            kind, tag, multiple = self.answers.pop(0)
            for callback in list(channel.events[kind]):
                callback(tag, multiple)

    channel = Channel()
    conn = Connection([("basic_ack", 2, True), ("basic_nack", 3, False), ("basic_ack", 5, True)])
    confirms = messaging.BatchConfirms(conn, channel, timeout=2)
    assert channel.selected
    for key in "abcde":
        confirms.publish(key, lambda: None)
    assert confirms.wait() == (["a", "b", "d", "e"], ["c"])
    confirms.publish("f", lambda: None)  # tag 6; the broker never answers
    confirms.timeout = 0.2
    with pytest.raises(messaging.ConfirmTimeout) as caught:
        confirms.wait()
    assert caught.value.acked == [] and caught.value.nacked == []


def test_a_consumed_message_costs_one_statement_besides_its_handler_and_an_event_one_more(config):
    """What a consumer sends around its handler (issue 11: per-message work caps the invitation
    chain). On PostgreSQL: the claim (INSERT … ON CONFLICT DO NOTHING RETURNING) and nothing else;
    an event the handler records is one statement (the outbox INSERT with its NOTIFY), a second event
    in the same transaction one more. A copy of a handled message is one statement too (the claim
    inserts nothing). On SQLite the claim is a lookup first and an insert last (two)."""
    from testsupport import count_queries
    db = database("invitations", config)
    postgres = not db.is_sqlite

    def recording(n):
        def handler(payload, ctx):
            for _ in range(n):
                messaging.record_event(ctx.session, inv_models.outbox, "link.verified", _link_verified_payload())
        return handler

    claim = 1 if postgres else 2
    for events_recorded, expected in ((0, claim), (1, claim + 1), (2, claim + 2)):
        body = events.make_envelope("link.verified", _link_verified_payload(), correlation_id="count")
        with count_queries(config, "invitations") as counter:
            outcome, _ = messaging.handle_message(db, inv_models.processed, "invitations",
                                                  recording(events_recorded), body)
        assert outcome == messaging.Outcome.HANDLED
        sent = [s for s in counter.statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
        assert len(sent) == expected, (events_recorded, sent)
        if postgres and events_recorded:
            assert sum("pg_notify" in s for s in sent) == 1, sent  # once per transaction, with the first event
        with count_queries(config, "invitations") as again:
            outcome, _ = messaging.handle_message(db, inv_models.processed, "invitations", recording(1), body)
        assert outcome == messaging.Outcome.DUPLICATE
        assert len(again.statements) == 1, again.statements

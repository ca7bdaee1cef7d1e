"""RabbitMQ quorum queues, on the real broker (a fresh private vhost per test): what the workers
declare, the retry and dead-letter paths on quorum queues, and `balcao migrate-queues` turning an
earlier version's classic queues into quorum queues without losing or doubling a message — also
when it is run again after an interruption."""
import json
import logging
import threading
import uuid

import pytest
from kombu import Exchange, Producer, Queue
from sqlalchemy import func, select

import balcao_cli
from services.common import events, messaging
from services.common.queue_migration import HOLDING_SUFFIX, holding_queue, topology_queues
from services.common.runtime import database
from services.invitations import models as inv_models
from testsupport import backends, private_vhost, wait_until
from testsupport.infra import rabbitmqctl_for, vhost_of

pytestmark = pytest.mark.distributed

QUEUE = events.queue_name("invitations", "link.verified")


@pytest.fixture
def vhost(monkeypatch):
    url = backends().broker_url
    with private_vhost(url) as private:
        assert private != url, "rabbitmqctl could not create a private vhost"
        monkeypatch.setenv("BALCAO_BROKER_URL", private)
        yield private


def _broker_queues(url) -> dict[str, dict]:
    """name → {"type": ..., "arguments": {...}} as the broker itself reports them."""
    status, out = rabbitmqctl_for(url)("-q", "list_queues", "-p", vhost_of(url), "name", "type", "arguments",
                                       "--formatter", "json")
    assert status == 0, out
    return {q["name"]: {"type": q["type"],
                        "arguments": {name: value for name, _type, value in q["arguments"]}}
            for q in json.loads(out)}


def _depth(url, name) -> int:
    """Messages ready in `name` (a passive declaration: exact at once, where the counts of
    `rabbitmqctl list_queues` lag for quorum queues)."""
    with messaging.broker_connection(url) as conn:
        return conn.default_channel.queue_declare(queue=name, passive=True).message_count


def _envelope(**payload):
    payload = {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "c@example.com",
               **payload}
    return events.make_envelope("link.verified", payload, correlation_id="cid-" + uuid.uuid4().hex[:8])


def _worker(config, url, handler, on_handled=None):
    handlers = {e: (lambda p, c: None) for e in events.consumed_by("invitations")}
    handlers["link.verified"] = handler
    return messaging.ConsumerWorker(service="invitations", db=database("invitations", config),
                                    processed=inv_models.processed, handlers=handlers, broker_url=url,
                                    on_handled=on_handled, config=config)


class Running:
    def __init__(self, worker, *, ready=True):
        self.worker, self.wait_ready = worker, ready
        self.thread = threading.Thread(target=worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        if self.wait_ready:
            assert self.worker.ready.wait(15), "the worker did not start consuming"
        return self.worker

    def __exit__(self, *exc):
        self.worker.stop()
        self.thread.join(15)


# --------------------------------------------------------------------------- the topology

def test_a_worker_declares_quorum_queues_with_at_least_once_dead_lettering(vhost, config):
    with Running(_worker(config, vhost, lambda p, c: None)):
        found = _broker_queues(vhost)
    expected = [q.name for q in messaging.all_queues()] + \
        [f"{q.name}.retry" for q in messaging.service_queues("invitations")]
    assert {name: found[name]["type"] for name in expected} == {name: "quorum" for name in expected}
    for q in messaging.service_queues("invitations"):
        args = found[q.name]["arguments"]
        assert (args["x-dead-letter-exchange"], args["x-dead-letter-strategy"], args["x-overflow"]) == \
            (events.DEAD_LETTER_EXCHANGE, "at-least-once", "reject-publish")
        retry = found[f"{q.name}.retry"]["arguments"]
        assert (retry["x-dead-letter-exchange"], retry["x-dead-letter-routing-key"],
                retry["x-dead-letter-strategy"]) == ("", q.name, "at-least-once")


def test_a_handler_failing_twice_is_retried_through_the_quorum_retry_queue_and_processed_once(
        vhost, config, monkeypatch):
    monkeypatch.setattr(messaging, "RETRY_BASE_SECONDS", 0.05)
    db = database("invitations", config)
    with db.begin() as s:
        before = s.execute(select(func.count()).select_from(inv_models.processed)).scalar_one()
    calls, done = [], threading.Event()

    def flaky(payload, ctx):
        calls.append(payload["invitation_id"])
        if len(calls) <= 2:
            raise RuntimeError("database hiccup")

    envelope = _envelope()
    with Running(_worker(config, vhost, flaky, on_handled=lambda *_: done.set())):
        with messaging.broker_connection(vhost) as conn:
            messaging.publish_envelope(Producer(conn.default_channel), envelope)
        assert done.wait(20), "the message was not retried to success"
        wait_until(lambda: _depth(vhost, QUEUE) == 0, timeout=10, message="the message stayed in its queue")
    assert len(calls) == 3
    with db.begin() as s:
        assert s.execute(select(func.count()).select_from(inv_models.processed)).scalar_one() == before + 1
    assert messaging.list_dead_letters(vhost) == []
    assert _depth(vhost, f"{QUEUE}.retry") == 0


def test_a_message_never_acknowledged_is_dead_lettered_by_the_broker_and_can_be_replayed(vhost):
    """A message the worker dies on (delivered, never acked) goes to the dead-letter queue after
    DELIVERY_LIMIT deliveries instead of killing workers forever."""
    envelope = _envelope()
    with messaging.broker_connection(vhost) as conn:
        messaging.declare_topology(conn)
        messaging.publish_envelope(Producer(conn.default_channel), envelope)
        for _ in range(messaging.DELIVERY_LIMIT + 1):
            channel = conn.channel()
            message = Queue(QUEUE).bind(channel).get(no_ack=False)
            if message is None:
                channel.close()
                break
            channel.close()  # unacknowledged: returned to the queue, one delivery more
    letters = wait_until(lambda: messaging.list_dead_letters(vhost) or None, timeout=15,
                         message="the broker did not dead-letter the message")
    assert [(d.type, d.queue) for d in letters] == [("link.verified", QUEUE)]
    assert "without an acknowledgement" in letters[0].reason
    assert [d.id for d in messaging.replay_dead_letters(vhost)] == [letters[0].id]
    with messaging.broker_connection(vhost) as conn:
        message = Queue(QUEUE).bind(conn.default_channel).get(no_ack=True)
    assert message is not None and json.loads(message.body)["id"] == envelope["id"]


# --------------------------------------------------------------------------- migration

def _old_topology(url, *, messages=0, dead=0) -> list[str]:
    """What an earlier version declared: classic queues (retry queues with the dead-letter
    arguments only), with `messages` events in QUEUE and `dead` letters. Returns the ids in QUEUE."""
    ids = []
    with messaging.broker_connection(url) as conn:
        channel = conn.default_channel
        ex = Exchange(events.EXCHANGE, type="topic", durable=True)
        for svc_queue in [q for svc in ("users", "invitations", "auth", "notifier", "documents")
                          for q in messaging.service_queues(svc)]:
            Queue(svc_queue.name, exchange=ex, routing_key=svc_queue.routing_key, durable=True).bind(channel).declare()
            Queue(f"{svc_queue.name}.retry", durable=True, queue_arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": svc_queue.name}).bind(channel).declare()
        dlx = Exchange(events.DEAD_LETTER_EXCHANGE, type="direct", durable=True)
        Queue(events.DEAD_LETTER_QUEUE, exchange=dlx, routing_key="dead", durable=True).bind(channel).declare()
        producer = Producer(channel)
        for _ in range(messages):
            envelope = _envelope()
            messaging.publish_envelope(producer, envelope)
            ids.append(envelope["id"])
        for i in range(dead):
            messaging.publish_envelope(producer, _envelope(), exchange_name=events.DEAD_LETTER_EXCHANGE,
                                       routing_key="dead",
                                       headers={messaging.REASON_HEADER: "failed 5 times", messaging.QUEUE_HEADER: QUEUE,
                                                messaging.RETRY_HEADER: 5, messaging.DEAD_LETTER_ID_HEADER: f"dl{i}"})
    return ids


def _ids_in(url, name) -> list[str]:
    """The event ids of every message in `name`, left in place."""
    with messaging.broker_connection(url) as conn:
        channel = conn.channel()
        held = []
        queue = Queue(name).bind(channel)
        while (message := queue.get(no_ack=False)) is not None:
            held.append(message)
        ids = [json.loads(m.body)["id"] for m in held]
        for m in held:
            m.requeue()
        channel.close()
        messaging.wait_returned(conn, name, len(held))
    return ids


def _all_quorum(url):
    found = _broker_queues(url)
    expected = [q.name for q in topology_queues()]
    assert {n: found[n]["type"] for n in expected} == {n: "quorum" for n in expected}
    assert not [n for n in found if n.endswith(HOLDING_SUFFIX)], "a holding queue was left behind"


def test_migrate_queues_moves_every_message_from_classic_to_quorum_queues(vhost, capsys):
    ids = _old_topology(vhost, messages=40, dead=2)
    with messaging.broker_connection(vhost) as conn:
        messaging.publish_envelope(Producer(conn.default_channel), _envelope(), exchange_name="",
                                   routing_key=f"{QUEUE}.retry", headers={messaging.RETRY_HEADER: 1}, expiration=15)
        retried_id = json.loads(Queue(f"{QUEUE}.retry").bind(conn.default_channel).get(no_ack=False).body)["id"]
    assert _broker_queues(vhost)[QUEUE]["type"] == "classic"

    assert balcao_cli.main(["migrate-queues"]) == 0
    out = capsys.readouterr().out
    assert f"{len(topology_queues())} queue(s) to migrate to quorum queues (43 message(s) in classic queues)" in out
    assert f"{QUEUE}: classic → quorum, 40 message(s)" in out

    _all_quorum(vhost)
    assert sorted(_ids_in(vhost, QUEUE)) == sorted(ids)
    assert sorted(d.id for d in messaging.list_dead_letters(vhost)) == ["dl0", "dl1"]
    # The parked retry kept its expiration: it is still waiting, then comes back to its queue.
    assert _depth(vhost, f"{QUEUE}.retry") == 1
    wait_until(lambda: _depth(vhost, QUEUE) == len(ids) + 1, timeout=30,  # (a peek would count as a delivery)
               message="the migrated retry never expired back into its queue")
    assert sorted(_ids_in(vhost, QUEUE)) == sorted([*ids, retried_id])

    # Idempotent: a second run changes nothing.
    assert balcao_cli.main(["migrate-queues"]) == 0
    assert "0 queue(s) migrated" in capsys.readouterr().out
    assert sorted(_ids_in(vhost, QUEUE)) == sorted([*ids, retried_id])


def _copy(producer, message, queue_name):
    """What the command does with one message before it acknowledges it (a cut may come after)."""
    producer.publish(message.body, exchange="", routing_key=queue_name, content_type=message.content_type,
                     content_encoding=message.content_encoding, delivery_mode=2,
                     headers=message.headers or {}, message_id=message.properties.get("message_id"))


def test_migrate_queues_finishes_an_interrupted_run_without_losing_or_doubling(vhost, capsys):
    """A run cut while draining: part of the messages already in the holding queue, one of them
    copied but not yet acknowledged (so in both places)."""
    ids = _old_topology(vhost, messages=30)
    holding = QUEUE + HOLDING_SUFFIX
    with messaging.broker_connection(vhost) as conn:
        holding_queue(holding).bind(conn.default_channel).declare()
        producer = Producer(conn.channel())
        channel = conn.channel()
        queue = Queue(QUEUE).bind(channel)
        for i in range(11):
            message = queue.get(no_ack=False)
            _copy(producer, message, holding)
            if i < 10:
                message.ack()
        channel.close()  # the 11th: copied, never acknowledged: back in the classic queue
    assert (_depth(vhost, QUEUE), _depth(vhost, holding)) == (20, 11)

    assert balcao_cli.main(["migrate-queues"]) == 0
    out = capsys.readouterr().out
    assert f"resuming the interrupted migration of {QUEUE}" in out
    assert "1 duplicate(s) of an interrupted run dropped" in out
    _all_quorum(vhost)
    assert sorted(_ids_in(vhost, QUEUE)) == sorted(ids)


def test_migrate_queues_finishes_a_run_cut_while_replaying(vhost, capsys):
    """Cut after the queue was re-declared: part replayed (one of them also still held)."""
    ids = _old_topology(vhost, messages=12)
    holding = QUEUE + HOLDING_SUFFIX
    with messaging.broker_connection(vhost) as conn:
        holding_queue(holding).bind(conn.default_channel).declare()
        producer = Producer(conn.channel())
        channel = conn.channel()
        queue = Queue(QUEUE).bind(channel)
        while (message := queue.get(no_ack=False)) is not None:
            _copy(producer, message, holding)
            message.ack()
        channel.queue_delete(queue=QUEUE)
        messaging.declare_queue(next(q for q in messaging.service_queues("invitations") if q.name == QUEUE), channel)
        queue = Queue(holding).bind(channel)
        for i in range(5):
            message = queue.get(no_ack=False)
            _copy(producer, message, QUEUE)
            if i < 4:
                message.ack()
        channel.close()
    assert (_depth(vhost, QUEUE), _depth(vhost, holding)) == (5, 8)

    assert balcao_cli.main(["migrate-queues"]) == 0
    assert "1 duplicate(s) of an interrupted run dropped" in capsys.readouterr().out
    _all_quorum(vhost)
    assert sorted(_ids_in(vhost, QUEUE)) == sorted(ids)


def test_migrate_queues_refuses_while_a_worker_consumes_a_classic_queue(vhost, capsys):
    ids = _old_topology(vhost, messages=3)
    with messaging.broker_connection(vhost) as conn:
        channel = conn.channel()
        channel.basic_qos(0, 1, False)
        channel.basic_consume(queue=f"{QUEUE}.retry", callback=lambda m: None)
        assert balcao_cli.main(["migrate-queues"]) == 1
        assert "stop every worker" in capsys.readouterr().err
        channel.close()
    assert _broker_queues(vhost)[QUEUE]["type"] == "classic"
    assert sorted(_ids_in(vhost, QUEUE)) == sorted(ids)


def test_a_new_worker_on_classic_queues_names_the_command_and_starts_once_they_are_migrated(
        vhost, config, caplog):
    _old_topology(vhost, messages=2)
    handled = []
    with caplog.at_level(logging.ERROR, logger="balcao.messaging"):
        with Running(_worker(config, vhost, lambda p, c: handled.append(p), on_handled=lambda *_: None),
                     ready=False) as worker:
            wait_until(lambda: any("balcao migrate-queues" in r.getMessage() for r in caplog.records), timeout=15,
                       message="the worker did not say which command to run")
            assert not worker.ready.is_set()
            assert "PRECONDITION_FAILED" in caplog.text  # the broker's own words, for the curious
            assert balcao_cli.main(["migrate-queues"]) == 0
            assert worker.ready.wait(30), "the worker did not start once the queues were migrated"
            wait_until(lambda: len(handled) == 2, timeout=15, message="the migrated messages were not consumed")


# --------------------------------------------------------------------------- publishing from a consumer

def test_a_burst_of_dead_letters_leaves_no_message_unacknowledged(vhost, config):
    """The worker publishes (retries, dead letters) with publisher confirms from inside its
    message callback. A confirmation the broker sends for several messages at once (`multiple`)
    must not leave the message whose publish was waiting unacknowledged forever."""
    with Running(_worker(config, vhost, lambda p, c: None)):
        with messaging.broker_connection(vhost) as conn:
            producer = Producer(conn.default_channel)
            for i in range(150):
                producer.publish({"id": f"not-a-uuid-{i}", "type": "link.verified", "payload": {}}, exchange="",
                                 routing_key=QUEUE, serializer="json", delivery_mode=2)
        wait_until(lambda: _depth(vhost, events.DEAD_LETTER_QUEUE) == 150, timeout=60,
                   message="not every invalid message was dead-lettered",
                   state=lambda: (_depth(vhost, events.DEAD_LETTER_QUEUE), _depth(vhost, QUEUE),
                                  _unacknowledged(vhost, QUEUE)))
        wait_until(lambda: _unacknowledged(vhost, QUEUE) == 0, timeout=30,
                   message="a message stayed unacknowledged", state=lambda: _unacknowledged(vhost, QUEUE))


def _unacknowledged(url, name) -> int:
    status, out = rabbitmqctl_for(url)("-q", "list_queues", "-p", vhost_of(url), "name", "messages_unacknowledged",
                                       "--formatter", "json")
    assert status == 0, out
    return next(q["messages_unacknowledged"] for q in json.loads(out) if q["name"] == name)

"""Messaging plumbing shared by every service, written once.

* `outbox_tables(metadata)` adds the service's `outbox` and `processed_messages` tables.
* `record_event(session, type, payload)` writes an event into the outbox inside the caller's
  transaction: the event commits with the state change or not at all.
* `OutboxRelay` publishes committed outbox rows to the broker (persistent messages,
  publisher confirms on RabbitMQ) and marks them published.
* `handle_message` runs one handler for one message exactly once in effect: the handler's
  writes and the processed-message id commit in one transaction.
* `ConsumerWorker` is the kombu loop around it: quorum queues on RabbitMQ (see "topology"; an
  earlier version's classic queue keeps it waiting (QueueMigrationNeeded, logged) until `balcao migrate-queues`
  — services.common.queue_migration — has run), manual ack after commit,
  bounded retries with backoff, then the dead-letter queue with the reason.
  On RabbitMQ a failed message is republished to `<queue>.retry` with a per-message expiration
  (exponential backoff); the retry queue dead-letters it back to `<queue>` when it expires, so
  the consumer never sleeps on a failing message. On the in-memory broker (embedded mode) a
  short bounded sleep stands in for the delay.
* `list_dead_letters` / `replay_dead_letters`: the operator commands `balcao dead-letters`.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kombu import Connection, Exchange, Producer, Queue
from marshmallow import ValidationError
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import events
from .db import Database

log = logging.getLogger("balcao.messaging")

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

MAX_ATTEMPTS = 5
RETRY_HEADER = "x-balcao-attempts"
REASON_HEADER = "x-balcao-reason"
QUEUE_HEADER = "x-balcao-queue"
DEAD_LETTER_ID_HEADER = "x-balcao-dead-letter-id"
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 60.0
MEMORY_RETRY_MAX_SLEEP = 2.0


def current_correlation_id() -> str:
    cid = correlation_id_var.get()
    return cid or uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def outbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    outbox = Table(
        "outbox", metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("type", String(100), nullable=False),
        Column("envelope", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )
    processed = Table(
        "processed_messages", metadata,
        Column("message_id", String(36), primary_key=True),
        Column("handler", String(100), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, processed


OUTBOX_CHANNEL = "balcao_outbox"
# The application_name of the relay's LISTEN connection (pg_stat_activity shows where it is).
LISTEN_APPLICATION_NAME = "balcao-outbox-listen"


def record_event(session: Session, outbox: Table, event_type: str, payload: dict) -> dict:
    """Add an event to the outbox in the current transaction. Returns the envelope."""
    envelope = events.make_envelope(event_type, payload, correlation_id=current_correlation_id())
    values = {"id": envelope["id"], "type": event_type, "envelope": envelope, "created_at": utcnow()}
    plain, notifying = _outbox_inserts(outbox)
    if not session.info.get("outbox_dirty") and session.get_bind().dialect.name == "postgresql":
        # The first event of a transaction also NOTIFYs (pg_notify, in the same statement): delivered at
        # commit to the relays LISTENing on this database, in whatever process they run (the web
        # process writes, the worker process relays) — no polling delay between the two.
        session.execute(notifying, values)
    else:
        session.execute(plain, values)
    session.info["outbox_dirty"] = True
    return envelope


@functools.cache
def _outbox_inserts(outbox: Table):
    """A service's outbox INSERT, and the same INSERT that also NOTIFYs the relays, each built once
    (the values come as parameters: building a statement per event costs more than running it)."""
    plain = insert(outbox).values(id=bindparam("id"), type=bindparam("type"), published_at=None,
                                  envelope=bindparam("envelope", type_=outbox.c.envelope.type),
                                  created_at=bindparam("created_at", type_=outbox.c.created_at.type))
    recorded = plain.returning(outbox.c.seq).cte("recorded")
    notifying = select(func.pg_notify(OUTBOX_CHANNEL, "")).select_from(recorded)
    return plain, notifying


# --------------------------------------------------------------------------- topology

def exchange() -> Exchange:
    return Exchange(events.EXCHANGE, type="topic", durable=True)


# Every queue is a RabbitMQ quorum queue (replicated by Raft across the cluster's nodes: a
# message the broker confirmed survives the loss of a minority of nodes). Quorum queues are
# always durable, never exclusive or auto-delete, have no priorities and no global basic.qos
# (the consumer's prefetch is per consumer). Where the broker itself dead-letters (an expired
# retry, a delivery limit reached) it does so at least once: the `at-least-once` strategy, which
# RabbitMQ only honours with `x-overflow: reject-publish` (no length limit is set, so nothing is
# ever refused for length; a refusal would reach the publisher as a nack: PublishRefused).
# The in-memory transport (embedded mode) ignores queue arguments.
QUORUM = {"x-queue-type": "quorum"}
DELIVERY_LIMIT = 20  # deliveries of one message (worker crashes, lost connections) before the broker dead-letters it


def at_least_once_dead_lettering(exchange_name: str, routing_key: str) -> dict:
    return {"x-dead-letter-exchange": exchange_name, "x-dead-letter-routing-key": routing_key,
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def dead_letter_queue() -> Queue:
    dlx = Exchange(events.DEAD_LETTER_EXCHANGE, type="direct", durable=True)
    return Queue(events.DEAD_LETTER_QUEUE, exchange=dlx, routing_key="dead", durable=True,
                 queue_arguments=dict(QUORUM))


def service_queues(service: str) -> list[Queue]:
    """The queues `service` consumes, one per event type. The consumer's own failures are retried
    and dead-lettered by ConsumerWorker; the broker dead-letters a message only when it was
    delivered DELIVERY_LIMIT times without an ack (a message that kills the worker every time)."""
    ex = exchange()
    arguments = {**QUORUM, **at_least_once_dead_lettering(events.DEAD_LETTER_EXCHANGE, "dead"),
                 "x-delivery-limit": DELIVERY_LIMIT}
    return [Queue(events.queue_name(service, etype), exchange=ex, routing_key=etype, durable=True,
                  queue_arguments=dict(arguments))
            for etype in sorted(events.consumed_by(service))]


def retry_queue(queue_name: str) -> Queue:
    """`<queue>.retry`: no consumer; expired messages are dead-lettered back to `<queue>` (quorum
    queues support per-message TTL since RabbitMQ 3.10; a message expires at the queue's head)."""
    return Queue(f"{queue_name}.retry", durable=True,
                 queue_arguments={**QUORUM, **at_least_once_dead_lettering("", queue_name)})


class QueueMigrationNeeded(RuntimeError):
    """A queue exists on the broker with other arguments than this version declares: a classic
    queue of an earlier version (RabbitMQ answers PRECONDITION_FAILED to the declaration)."""

    def __init__(self, queue: str, detail: str):
        self.queue, self.detail = queue, detail
        super().__init__(
            f"queue {queue!r} exists on the broker with other arguments than this version declares "
            f"(a classic queue of an earlier version: {detail}). Stop every worker of the earlier "
            f"version and run `balcao migrate-queues` (README, Operations); until then this process "
            f"waits and retries.")


class PublishRefused(RuntimeError):
    """The broker answered a publish with a nack (publisher confirms): the message was not taken."""


def declare_queue(queue: Queue, channel) -> None:
    """Declare `queue` on `channel`; QueueMigrationNeeded when the broker has it with other arguments."""
    from amqp.exceptions import PreconditionFailed
    try:
        queue.bind(channel).declare()
    except PreconditionFailed as exc:
        raise QueueMigrationNeeded(queue.name, str(exc)) from exc


def retry_delay(attempts: int) -> float:
    """Backoff before the next attempt after `attempts` failed ones: 0.5 s, 1 s, 2 s, ... ≤ 60 s."""
    return min(RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)


def is_amqp(url: str) -> bool:
    return url.startswith(("amqp://", "pyamqp://", "amqps://"))


def all_queues() -> list[Queue]:
    from .config import SERVICES
    return [q for svc in SERVICES for q in service_queues(svc)] + [dead_letter_queue()]


def declare_topology(conn: Connection) -> None:
    """Declare the exchange and every consumer queue of the catalogue (idempotent).

    Publishers declare it too, so no event is dropped because its consumer has not started yet.
    """
    channel = conn.default_channel
    for q in all_queues():
        declare_queue(q, channel)


def broker_connection(url: str, *, confirm_each: bool = True) -> Connection:
    """`confirm_each`: on RabbitMQ every publish waits for its publisher confirm (False: the caller
    confirms batches itself, `BatchConfirms`)."""
    options = {}
    if url.startswith("memory://"):
        options = {"polling_interval": 0.02}
    elif is_amqp(url) and confirm_each:
        options = {"confirm_publish": True}
    return Connection(url, transport_options=options, connect_timeout=5, heartbeat=0)


def publish_envelope(producer: Producer, envelope: dict, *, routing_key: str | None = None,
                     exchange_name: str | None = None, headers: dict | None = None,
                     expiration: float | None = None, retry: bool = True) -> None:
    """Publish one persistent JSON message; with publisher confirms (RabbitMQ) it returns once the
    broker took it, and raises PublishRefused when the broker answered with a nack. `retry`: kombu
    reconnects and publishes again on a connection error (False: the error is raised — a batch
    being confirmed, `BatchConfirms`, must not move to another channel half-way)."""
    from amqp.exceptions import MessageNacked
    from kombu.exceptions import OperationalError
    extra = {"expiration": expiration} if expiration is not None else {}
    try:
        producer.publish(
            envelope,
            exchange=events.EXCHANGE if exchange_name is None else exchange_name,
            routing_key=routing_key or envelope["type"],
            serializer="json",
            delivery_mode=2,
            message_id=envelope.get("id") if isinstance(envelope, dict) else None,
            correlation_id=envelope.get("correlation_id") if isinstance(envelope, dict) else None,
            headers=headers or {},
            retry=retry,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2},
            **extra,
        )
    except OperationalError as exc:  # kombu's retries gave up; a nack is not a connection problem
        if isinstance(exc.__cause__ or exc.__context__, MessageNacked):
            raise PublishRefused(
                f"the broker refused (nack) the message for {exchange_name or events.EXCHANGE!r}/"
                f"{routing_key or envelope.get('type')!r}: a queue without a quorum of its nodes, or at "
                f"a length limit with reject-publish") from exc
        raise


def check_broker(url: str, *, timeout: float = 3.0) -> None:
    """Raise if the broker does not accept a connection within `timeout` seconds."""
    conn = Connection(url, connect_timeout=timeout, heartbeat=0,
                      transport_options={"polling_interval": 0.02} if url.startswith("memory://") else {})
    try:
        conn.ensure_connection(max_retries=1, timeout=timeout)
    finally:
        conn.release()


_broker_status: dict[str, tuple[float, str | None]] = {}
_broker_status_lock = threading.Lock()
BROKER_CHECK_TTL = 5.0


def broker_problem(url: str, *, ttl: float = BROKER_CHECK_TTL) -> str | None:
    """None if the broker was reachable within the last `ttl` seconds, else the reason (cached)."""
    import time
    now = time.monotonic()
    with _broker_status_lock:
        cached = _broker_status.get(url)
        if cached and now - cached[0] < ttl:
            return cached[1]
    try:
        check_broker(url)
        problem = None
    except Exception as exc:  # reported to the operator by /readyz
        problem = f"{type(exc).__name__}: {exc}"[:200]
    with _broker_status_lock:
        _broker_status[url] = (time.monotonic(), problem)
    return problem


def queue_depths(url: str, service: str) -> dict[str, int]:
    """Messages ready in each of the service's queues (passive declare: nothing is created)."""
    depths = {}
    with broker_connection(url) as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        channel = conn.channel()
        try:
            for q in service_queues(service):
                try:
                    _, count, _ = channel.queue_declare(queue=q.name, passive=True)
                except Exception:  # not declared yet (no worker or publisher has run)
                    channel = conn.channel()
                    continue
                depths[q.name] = int(count)
        finally:
            try:
                channel.close()
            except Exception:
                pass
    return depths


# --------------------------------------------------------------------------- outbox relay

class ConfirmTimeout(Exception):
    """The broker did not confirm every message of a batch in time."""


class BatchConfirms:
    """Publisher confirms for batches on one RabbitMQ channel (py-amqp): publish every message of
    a batch, then wait once for the broker's acks — instead of one round trip per message (what
    `confirm_publish=True` does). The channel is put in confirm mode here; its delivery tags count
    its publishes from 1, and an ack or nack may cover every tag up to its own (`multiple`)."""

    def __init__(self, connection: Connection, channel, *, timeout: float = 10.0):
        self.connection, self.channel, self.timeout = connection, channel, timeout
        channel.confirm_select()
        self._next_tag = 1
        self._outstanding: dict[int, object] = {}
        self._acked: list = []
        self._nacked: list = []
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    def _settle(self, tag: int, multiple: bool, into: list) -> None:
        tags = [t for t in self._outstanding if t <= tag] if multiple else [tag]
        for t in tags:
            if t in self._outstanding:
                into.append(self._outstanding.pop(t))

    def _on_ack(self, delivery_tag, multiple) -> None:
        self._settle(int(delivery_tag), bool(multiple), self._acked)

    def _on_nack(self, delivery_tag, multiple) -> None:
        self._settle(int(delivery_tag), bool(multiple), self._nacked)

    def publish(self, key, publish: Callable[[], None]) -> None:
        """Run `publish` (one basic.publish on the channel) and remember its delivery tag as `key`."""
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        self._outstanding[tag] = key
        publish()

    def wait(self) -> tuple[list, list]:
        """Until every message published since the last wait is acked or nacked: (acked keys, nacked
        keys). Raises ConfirmTimeout (with what was settled so far in `.acked`, `.nacked`) when the
        broker has not answered for all of them within the timeout."""
        import time
        deadline = time.monotonic() + self.timeout
        while self._outstanding:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self.connection.drain_events(timeout=min(left, 1.0))
            except TimeoutError:  # socket.timeout is TimeoutError
                continue
        acked, nacked, self._acked, self._nacked = self._acked, self._nacked, [], []
        if self._outstanding:
            exc = ConfirmTimeout(f"{len(self._outstanding)} publish(es) unconfirmed after {self.timeout:.0f}s")
            self._outstanding.clear()  # the caller drops this channel: its late answers do not count
            exc.acked, exc.nacked = acked, nacked  # type: ignore[attr-defined]
            raise exc
        return acked, nacked


class OutboxRelay:
    """Publishes committed outbox rows of one service, oldest first, then marks them published."""

    def __init__(self, db: Database, outbox: Table, broker_url: str, *, poll_interval: float = 1.0,
                 batch: int = 200, listen_url: str | None = None):
        """`listen_url`: where to LISTEN for the commits' NOTIFY — a direct connection to
        PostgreSQL (BALCAO_<SVC>_DATABASE_LISTEN_URL) when `db` goes through a transaction-mode
        pooler, which cannot carry LISTEN; default: `db`'s own URL."""
        self.db, self.outbox, self.broker_url = db, outbox, broker_url
        self.listen_url = listen_url
        self.poll_interval, self.batch = poll_interval, batch
        self._wake = threading.Event()
        self.stopped = threading.Event()
        db.on_outbox_commit(self._wake.set)

    def wake(self) -> None:
        self._wake.set()

    def _listen(self) -> None:
        """On PostgreSQL: wake the relay on every NOTIFY from record_event's commits (any process).
        A session of its own, never pooled per transaction: the LISTEN must stay on this server
        connection for the notifications to reach it."""
        import psycopg
        from sqlalchemy.engine import make_url
        url = make_url(self.listen_url) if self.listen_url else self.db.engine.url
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, application_name=LISTEN_APPLICATION_NAME) as conn:
                    conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self._wake.set()  # rows committed while we were not listening
                    backoff = 0.5
                    while not self.stopped.is_set():
                        for _notify in conn.notifies(timeout=1.0):
                            self._wake.set()
            except Exception:  # the relay still polls meanwhile; report and reconnect
                log.warning("outbox LISTEN for %s lost; reconnecting in %.1fs", self.db.service, backoff,
                            exc_info=True)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 30)

    def publish_pending(self, producer: Producer, confirms: BatchConfirms | None = None) -> int:
        """One batch: lock unpublished rows (SKIP LOCKED where the database has it), publish, mark.

        With `confirms` (RabbitMQ) the whole batch is published, then its publisher confirms are
        awaited once, and exactly the rows the broker acked are marked published (a nacked or
        unconfirmed row stays unpublished: a later batch sends it again, and the consumers'
        processed-message ids make a second copy harmless); then PublishRefused (a nack) or
        ConfirmTimeout is raised, so that the relay backs off before trying again. Without, each publish is confirmed on
        its own (a `confirm_publish` connection) or needs none (the in-memory broker).
        Returns how many rows were taken."""
        unconfirmed: Exception | None = None
        with self.db.begin() as session:
            stmt = (select(self.outbox.c.seq, self.outbox.c.envelope)
                    .where(self.outbox.c.published_at.is_(None))
                    .order_by(self.outbox.c.seq).limit(self.batch))
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = session.execute(stmt).all()
            if confirms is None:
                for row in rows:
                    publish_envelope(producer, row.envelope)
                done = list(rows)
            else:
                for row in rows:
                    confirms.publish(row, functools.partial(publish_envelope, producer, row.envelope, retry=False))
                try:
                    done, nacked = confirms.wait()
                except ConfirmTimeout as exc:
                    done, nacked, unconfirmed = exc.acked, exc.nacked, exc  # type: ignore[attr-defined]
                for row in nacked:
                    log.warning("broker refused (nack) %s id=%s; it is published again with the next batch",
                                row.envelope.get("type"), row.envelope.get("id"))
                if nacked and unconfirmed is None:
                    unconfirmed = PublishRefused(
                        f"the broker refused (nack) {len(nacked)} of {len(rows)} message(s): a queue without a "
                        f"quorum of its nodes, or at a length limit with reject-publish")
            for row in done:
                token = correlation_id_var.set(row.envelope.get("correlation_id"))
                try:
                    log.info("published %s id=%s", row.envelope.get("type"), row.envelope.get("id"))
                finally:
                    correlation_id_var.reset(token)
            if done:
                session.execute(update(self.outbox).where(self.outbox.c.seq.in_([r.seq for r in done]))
                                .values(published_at=utcnow()))
        if unconfirmed is not None:  # after marking what was confirmed: the relay backs off, reconnects
            raise unconfirmed
        return len(rows)

    def run(self) -> None:
        if not self.db.is_sqlite:
            threading.Thread(target=self._listen, name=f"outbox-listen-{self.db.service}", daemon=True).start()
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                with broker_connection(self.broker_url, confirm_each=False) as conn:
                    conn.ensure_connection(max_retries=1, interval_start=0.2)  # the loop retries
                    declare_topology(conn)
                    producer = Producer(conn.default_channel)
                    confirms = BatchConfirms(conn, conn.default_channel) if is_amqp(self.broker_url) else None
                    backoff = 0.5
                    while not self.stopped.is_set():
                        if self.publish_pending(producer, confirms) >= self.batch:
                            continue
                        self._wake.wait(self.poll_interval)
                        self._wake.clear()
            except Exception:  # broker or database down: report and retry, never give up silently
                log.exception("outbox relay for %s failed; retrying in %.1fs", self.db.service, backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 30)

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()


# --------------------------------------------------------------------------- consuming

@dataclass
class HandlerContext:
    session: Session
    envelope: dict
    service: str
    config: object = None  # services.common.config.Config of the consuming process


Handler = Callable[[dict, HandlerContext], None]


class Outcome:
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


def handle_message(db: Database, processed: Table, service: str, handler: Handler, body, *,
                   config=None) -> tuple[str, dict | None]:
    """Validate `body`, then run `handler` once in effect. Raises what the handler raises.

    Returns (Outcome, envelope). INVALID means: dead-letter it, never retry.
    """
    try:
        envelope, payload = events.parse_envelope(body)
    except ValidationError as exc:
        return Outcome.INVALID, {"error": json.dumps(exc.messages, default=str)}
    message_id = str(envelope["id"])
    handler_name = f"{service}:{envelope['type']}"
    token = correlation_id_var.set(envelope["correlation_id"])
    context = functools.partial(HandlerContext, envelope=envelope, service=service, config=config)
    try:
        if db.is_sqlite:
            return _handle_claiming_last(db, processed, handler, payload, context, message_id, handler_name), envelope
        with db.begin() as session:
            # The message is claimed first, in the handler's own transaction: one statement where a
            # lookup and a later insert were two. A copy another worker handles at the same moment
            # waits on the claim's unique key; when that transaction commits, this claim inserts
            # nothing (a duplicate); when it rolls back, this one goes on and handles the message.
            claimed = session.execute(_claim_statement(processed), {
                "message_id": message_id, "handler": handler_name, "processed_at": utcnow()}).first()
            if claimed is None:
                return Outcome.DUPLICATE, envelope
            handler(payload, context(session=session))
    finally:
        correlation_id_var.reset(token)
    return Outcome.HANDLED, envelope


@functools.cache
def _claim_statement(processed: Table):
    """INSERT … ON CONFLICT DO NOTHING RETURNING of a service's processed-messages table, built once
    (its values come as parameters)."""
    return (pg_insert(processed).on_conflict_do_nothing(index_elements=["message_id", "handler"])
            .returning(processed.c.message_id))


def _handle_claiming_last(db: Database, processed: Table, handler: Handler, payload: dict, context,
                          message_id: str, handler_name: str) -> str:
    """handle_message on SQLite (the embedded mode): one writer at a time, and a handler may commit
    a transaction of its own on another connection (the notifier's attempt, before SMTP), so the
    claim is written last: this transaction takes the write lock only then."""
    seen = select(processed.c.message_id).where(processed.c.message_id == message_id,
                                                processed.c.handler == handler_name)
    try:
        with db.begin() as session:
            if session.execute(seen).first():
                return Outcome.DUPLICATE
            handler(payload, context(session=session))
            session.execute(insert(processed).values(message_id=message_id, handler=handler_name,
                                                     processed_at=utcnow()))
    except IntegrityError:
        # Another worker committed the same message first: the effect already happened once.
        with db.begin() as session:
            if session.execute(seen).first():
                return Outcome.DUPLICATE
        raise
    return Outcome.HANDLED


class ConsumerWorker:
    """Consumes one service's queues (one handler per event type) until stopped."""

    def __init__(self, *, service: str, db: Database, processed: Table, handlers: dict[str, Handler],
                 broker_url: str, prefetch: int = 10, on_handled: Callable[[str, dict], None] | None = None,
                 config=None):
        missing = events.consumed_by(service) ^ set(handlers)
        if missing:
            raise RuntimeError(f"{service}: handlers and catalogue disagree on {sorted(missing)}")
        self.service, self.db, self.processed, self.handlers = service, db, processed, handlers
        self.broker_url, self.prefetch, self.on_handled = broker_url, prefetch, on_handled
        self.config = config
        self.stopped = threading.Event()
        self.ready = threading.Event()

    def _callback_for(self, queue_name: str, event_type: str, producer: Producer):
        from . import metrics
        handler = self.handlers[event_type]

        def on_message(body, message):
            attempts = int((message.headers or {}).get(RETRY_HEADER, 0)) + 1
            cid = (body.get("correlation_id") if isinstance(body, dict) else None) \
                or (message.properties or {}).get("correlation_id")
            token = correlation_id_var.set(str(cid) if cid else None)
            try:
                try:
                    outcome, envelope = handle_message(self.db, self.processed, self.service, handler, body,
                                                       config=self.config)
                except Exception as exc:  # the handler failed: retry with backoff, then dead-letter
                    metrics.MESSAGES_FAILED.labels(self.service, queue_name).inc()
                    log.exception("%s failed on attempt %d", queue_name, attempts)
                    if attempts >= MAX_ATTEMPTS:
                        self._dead_letter(producer, body, queue_name,
                                          f"failed {attempts} times: {type(exc).__name__}: {exc}", attempts)
                    else:
                        self._retry_later(producer, body, queue_name, attempts)
                    message.ack()
                    return
                if outcome == Outcome.INVALID:
                    log.error("%s: invalid message dead-lettered: %s", queue_name, envelope["error"])
                    self._dead_letter(producer, body, queue_name, f"invalid: {envelope['error']}", attempts)
                else:
                    metrics.MESSAGES_CONSUMED.labels(self.service, queue_name, outcome).inc()
                    log.info("%s %s id=%s from %s", outcome, event_type, envelope.get("id"), queue_name)
                message.ack()
                if outcome == Outcome.HANDLED and self.on_handled:
                    self.on_handled(event_type, envelope)
            finally:
                correlation_id_var.reset(token)

        return on_message

    def _decode_error_handler(self, queue_name: str, producer: Producer):
        """A body that is not JSON at all: dead-letter it (never redeliver it forever)."""

        def on_decode_error(message, exc):
            log.error("%s: undecodable message dead-lettered: %s", queue_name, type(exc).__name__)
            raw = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
            self._dead_letter(producer, {"raw": raw[:10000]}, queue_name,
                              f"invalid: undecodable body ({type(exc).__name__}: {exc})"[:1000], 1)
            message.ack()

        return on_decode_error

    def _retry_later(self, producer: Producer, body, queue_name: str, attempts: int) -> None:
        delay = retry_delay(attempts)
        headers = {RETRY_HEADER: attempts}
        if is_amqp(self.broker_url):
            # Parked in <queue>.retry until it expires, then dead-lettered back to <queue>.
            publish_envelope(producer, body, exchange_name="", routing_key=f"{queue_name}.retry",
                             headers=headers, expiration=delay)
        else:
            self.stopped.wait(min(delay, MEMORY_RETRY_MAX_SLEEP))
            publish_envelope(producer, body, exchange_name="", routing_key=queue_name, headers=headers)

    def _dead_letter(self, producer: Producer, body, queue_name: str, reason: str, attempts: int) -> None:
        from . import metrics
        metrics.MESSAGES_DEAD_LETTERED.labels(self.service, queue_name).inc()
        publish_envelope(producer, body if isinstance(body, dict) else {"raw": str(body)},
                         exchange_name=events.DEAD_LETTER_EXCHANGE, routing_key="dead",
                         headers={REASON_HEADER: reason[:1000], QUEUE_HEADER: queue_name,
                                  RETRY_HEADER: attempts, DEAD_LETTER_ID_HEADER: uuid.uuid4().hex[:12]})

    def run(self) -> None:
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                # Retries and dead letters go out on a connection of their own: waiting for a
                # publisher confirm on the consuming connection would dispatch the next deliveries
                # inside that wait (handlers nested in a handler), and a confirm covering two
                # publishes would leave the outer delivery unacknowledged for good.
                with broker_connection(self.broker_url) as conn, broker_connection(self.broker_url) as publishing:
                    conn.ensure_connection(max_retries=3)
                    publishing.ensure_connection(max_retries=3)
                    declare_topology(conn)
                    channel = conn.channel()
                    channel.basic_qos(0, self.prefetch, False)  # per consumer: quorum queues have no global qos
                    producer = Producer(publishing.channel())
                    consumers = []
                    for q in service_queues(self.service):
                        if is_amqp(self.broker_url):
                            declare_queue(retry_queue(q.name), channel)
                        etype = q.routing_key
                        consumers.append(conn.Consumer(
                            [q], channel=channel, accept=["json"], no_ack=False,
                            callbacks=[self._callback_for(q.name, etype, producer)],
                            on_decode_error=self._decode_error_handler(q.name, producer)))
                    for c in consumers:
                        c.consume()
                    self.ready.set()
                    backoff = 0.5
                    while not self.stopped.is_set():
                        try:
                            conn.drain_events(timeout=0.5)
                        except TimeoutError:
                            pass
                        except OSError as exc:
                            if "timed out" in str(exc):
                                continue
                            raise
            except QueueMigrationNeeded as exc:  # an operator's step, not a crash: say which, and wait
                backoff = max(backoff, 5.0)
                log.error("consumer %s cannot start: %s (next try in %.0fs)", self.service, exc, backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 30)
            except Exception:
                log.exception("consumer %s lost its connection; reconnecting in %.1fs", self.service, backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 30)

    def stop(self) -> None:
        self.stopped.set()


# --------------------------------------------------------------------------- periodic jobs

class PeriodicJob:
    """Runs `fn(config)` every `interval` seconds until stopped; an exception is logged and the
    loop goes on (the next run is the retry)."""

    def __init__(self, name: str, interval: float, fn: Callable, config=None):
        self.name, self.interval, self.fn, self.config = name, float(interval), fn, config
        self.stopped = threading.Event()
        self.runs = 0
        self.failures = 0

    def run_once(self) -> None:
        try:
            self.fn(self.config)
        except Exception:
            self.failures += 1
            log.exception("periodic job %s failed; it runs again in %.1fs", self.name, self.interval)
        finally:
            self.runs += 1

    def run(self) -> None:
        while not self.stopped.is_set():
            self.run_once()
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()


# --------------------------------------------------------------------------- dead letters

@dataclass
class DeadLetter:
    id: str
    type: str
    queue: str
    reason: str
    attempts: int


def _dead_letter_info(message) -> DeadLetter:
    import hashlib
    headers = message.headers or {}
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    dl_id = headers.get(DEAD_LETTER_ID_HEADER) or (message.properties or {}).get("message_id") \
        or hashlib.sha256(body).hexdigest()[:12]
    try:
        payload = json.loads(body)
        etype = payload.get("type") if isinstance(payload, dict) else None
    except ValueError:
        etype = None
    if QUEUE_HEADER not in headers and headers.get("x-first-death-queue"):
        # Dead-lettered by the broker itself (the queue's delivery limit): its x-death headers say whence.
        queue, reason = str(headers["x-first-death-queue"]), headers.get("x-first-death-reason", "")
        reason = (f"delivered {DELIVERY_LIMIT} times without an acknowledgement (the worker died on it?)"
                  if reason == "delivery_limit" else f"dead-lettered by the broker: {reason}")
        return DeadLetter(id=str(dl_id), type=str(etype or "?"), queue=queue, reason=reason,
                          attempts=int(headers.get("x-delivery-count", 0) or 0))
    return DeadLetter(id=str(dl_id), type=str(etype or "?"), queue=str(headers.get(QUEUE_HEADER, "?")),
                      reason=str(headers.get(REASON_HEADER, "")), attempts=int(headers.get(RETRY_HEADER, 0) or 0))


@contextlib.contextmanager
def held_messages(conn: Connection, queue: Queue, *, declare: bool = False):
    """Every message of `queue` fetched without acknowledgement (declared first if `declare`). The
    caller acks what it removes; the rest is requeued on exit (explicitly: the in-memory transport
    does not restore unacked messages on close), and waited for until the queue holds it again."""
    channel = conn.channel()
    held = []
    try:
        bound = queue.bind(channel)
        if declare:
            declare_queue(queue, channel)
        while (message := bound.get(no_ack=False)) is not None:
            held.append(message)
        yield held
    finally:
        returned = 0
        for message in held:
            if not message.acknowledged:
                message.requeue()
                returned += 1
        channel.close()
        wait_returned(conn, queue.name, returned)


@contextlib.contextmanager
def _dead_letters_held(conn: Connection):
    """Every message of the dead-letter queue fetched without acknowledgement, as
    [(DeadLetter, message)] (`held_messages`)."""
    with held_messages(conn, dead_letter_queue(), declare=True) as held:
        yield [(_dead_letter_info(message), message) for message in held]


def wait_returned(conn: Connection, queue_name: str, count: int, *, timeout: float = 10.0) -> None:
    """A quorum queue takes back returned (requeued) messages asynchronously: seen from another
    channel they are missing for a moment. Wait until `queue_name` holds `count` ready messages
    at least, so that the caller's next look sees them all."""
    import time
    if count <= 0:
        return
    deadline = time.monotonic() + timeout
    channel = conn.channel()
    try:
        while channel.queue_declare(queue=queue_name, passive=True).message_count < count:
            if time.monotonic() > deadline:
                log.warning("%s: %d returned message(s) not back after %.0fs", queue_name, count, timeout)
                return
            time.sleep(0.02)
    finally:
        channel.close()


def list_dead_letters(broker_url: str) -> list[DeadLetter]:
    """Every message in balcao.dead_letters (left in place)."""
    with broker_connection(broker_url) as conn:
        conn.ensure_connection(max_retries=3)
        with _dead_letters_held(conn) as held:
            return [info for info, _ in held]


def replay_dead_letters(broker_url: str, ids: list[str] | None = None) -> list[DeadLetter]:
    """Republish dead letters to their original queue (attempts reset) and remove them from the
    dead-letter queue. `ids=None` replays all. Returns what was replayed."""
    wanted = None if ids is None else set(ids)
    replayed = []
    with broker_connection(broker_url) as conn:
        conn.ensure_connection(max_retries=3)
        declare_topology(conn)
        producer = Producer(conn.channel())
        with _dead_letters_held(conn) as held:
            for info, message in held:
                if (wanted is not None and info.id not in wanted) or info.queue == "?":
                    continue
                producer.publish(message.body, exchange="", routing_key=info.queue,
                                 content_type=message.content_type, content_encoding=message.content_encoding,
                                 delivery_mode=2, headers={"x-balcao-replayed-from": info.id},
                                 message_id=(message.properties or {}).get("message_id"),
                                 correlation_id=(message.properties or {}).get("correlation_id"))
                message.ack()  # only after the broker confirmed the republished copy
                replayed.append(info)
                log.info("dead letter %s replayed to %s", info.id, info.queue)
    return replayed

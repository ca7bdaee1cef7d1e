"""Messaging plumbing shared by every service, written once.

* `outbox_tables(metadata)` adds the service's `outbox` and `processed_messages` tables.
* `record_event(session, type, payload)` writes an event into the outbox inside the caller's
  transaction: the event commits with the state change or not at all.
* `OutboxRelay` publishes committed outbox rows to the broker (persistent messages,
  publisher confirms on RabbitMQ) and marks them published.
* `handle_message` runs one handler for one message exactly once in effect: the handler's
  writes and the processed-message id commit in one transaction.
* `ConsumerWorker` is the kombu loop around it: durable queues, manual ack after commit,
  bounded retries with backoff, then the dead-letter queue with the reason.
"""
from __future__ import annotations

import contextvars
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from kombu import Connection, Exchange, Producer, Queue
from marshmallow import ValidationError
from sqlalchemy import (JSON, Column, DateTime, Integer, MetaData, String, Table, insert, select,
                        update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import events
from .db import Database

log = logging.getLogger("balcao.messaging")

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

MAX_ATTEMPTS = 5
RETRY_HEADER = "x-balcao-attempts"


def current_correlation_id() -> str:
    cid = correlation_id_var.get()
    return cid or uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


def record_event(session: Session, outbox: Table, event_type: str, payload: dict) -> dict:
    """Add an event to the outbox in the current transaction. Returns the envelope."""
    envelope = events.make_envelope(event_type, payload, correlation_id=current_correlation_id())
    session.execute(insert(outbox).values(
        id=envelope["id"], type=event_type, envelope=envelope, created_at=utcnow(), published_at=None,
    ))
    session.info["outbox_dirty"] = True
    return envelope


# --------------------------------------------------------------------------- topology

def exchange() -> Exchange:
    return Exchange(events.EXCHANGE, type="topic", durable=True)


def dead_letter_queue() -> Queue:
    dlx = Exchange(events.DEAD_LETTER_EXCHANGE, type="direct", durable=True)
    return Queue(events.DEAD_LETTER_QUEUE, exchange=dlx, routing_key="dead", durable=True)


def service_queues(service: str) -> list[Queue]:
    ex = exchange()
    return [Queue(events.queue_name(service, etype), exchange=ex, routing_key=etype, durable=True)
            for etype in sorted(events.consumed_by(service))]


def all_queues() -> list[Queue]:
    from .config import SERVICES
    return [q for svc in SERVICES for q in service_queues(svc)] + [dead_letter_queue()]


def declare_topology(conn: Connection) -> None:
    """Declare the exchange and every consumer queue of the catalogue (idempotent).

    Publishers declare it too, so no event is dropped because its consumer has not started yet.
    """
    channel = conn.default_channel
    for q in all_queues():
        q.bind(channel).declare()


def broker_connection(url: str) -> Connection:
    options = {}
    if url.startswith("memory://"):
        options = {"polling_interval": 0.02}
    elif url.startswith(("amqp://", "pyamqp://", "amqps://")):
        options = {"confirm_publish": True}
    return Connection(url, transport_options=options, connect_timeout=5, heartbeat=0)


def publish_envelope(producer: Producer, envelope: dict, *, routing_key: str | None = None,
                     exchange_name: str | None = None, headers: dict | None = None) -> None:
    producer.publish(
        envelope,
        exchange=events.EXCHANGE if exchange_name is None else exchange_name,
        routing_key=routing_key or envelope["type"],
        serializer="json",
        delivery_mode=2,
        message_id=envelope.get("id") if isinstance(envelope, dict) else None,
        correlation_id=envelope.get("correlation_id") if isinstance(envelope, dict) else None,
        headers=headers or {},
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2},
    )


# --------------------------------------------------------------------------- outbox relay

class OutboxRelay:
    """Publishes committed outbox rows of one service, oldest first, then marks them published."""

    def __init__(self, db: Database, outbox: Table, broker_url: str, *, poll_interval: float = 1.0,
                 batch: int = 200):
        self.db, self.outbox, self.broker_url = db, outbox, broker_url
        self.poll_interval, self.batch = poll_interval, batch
        self._wake = threading.Event()
        self.stopped = threading.Event()
        db.on_outbox_commit(self._wake.set)

    def wake(self) -> None:
        self._wake.set()

    def publish_pending(self, producer: Producer) -> int:
        """One batch: lock unpublished rows (SKIP LOCKED where the database has it), publish, mark."""
        with self.db.begin() as session:
            stmt = (select(self.outbox.c.seq, self.outbox.c.envelope)
                    .where(self.outbox.c.published_at.is_(None))
                    .order_by(self.outbox.c.seq).limit(self.batch))
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = session.execute(stmt).all()
            for row in rows:
                publish_envelope(producer, row.envelope)
            if rows:
                session.execute(update(self.outbox).where(self.outbox.c.seq.in_([r.seq for r in rows]))
                                .values(published_at=utcnow()))
        return len(rows)

    def run(self) -> None:
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                with broker_connection(self.broker_url) as conn:
                    conn.ensure_connection(max_retries=3)
                    declare_topology(conn)
                    producer = Producer(conn.default_channel)
                    backoff = 0.5
                    while not self.stopped.is_set():
                        if self.publish_pending(producer) >= self.batch:
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
    try:
        with db.begin() as session:
            seen = session.execute(select(processed.c.message_id).where(
                processed.c.message_id == message_id, processed.c.handler == handler_name)).first()
            if seen:
                return Outcome.DUPLICATE, envelope
            handler(payload, HandlerContext(session=session, envelope=envelope, service=service, config=config))
            session.execute(insert(processed).values(message_id=message_id, handler=handler_name,
                                                     processed_at=utcnow()))
    except IntegrityError:
        # Another worker committed the same message first: the effect already happened once.
        with db.begin() as session:
            if session.execute(select(processed.c.message_id).where(
                    processed.c.message_id == message_id, processed.c.handler == handler_name)).first():
                return Outcome.DUPLICATE, envelope
        raise
    finally:
        correlation_id_var.reset(token)
    return Outcome.HANDLED, envelope


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
        handler = self.handlers[event_type]

        def on_message(body, message):
            attempts = int((message.headers or {}).get(RETRY_HEADER, 0)) + 1
            try:
                outcome, envelope = handle_message(self.db, self.processed, self.service, handler, body,
                                                   config=self.config)
            except Exception as exc:  # the handler failed: retry with backoff, then dead-letter
                log.exception("%s failed on attempt %d", queue_name, attempts)
                if attempts >= MAX_ATTEMPTS:
                    self._dead_letter(producer, body, queue_name, f"{type(exc).__name__}: {exc}", attempts)
                else:
                    self.stopped.wait(min(0.2 * 2 ** attempts, 10))
                    publish_envelope(producer, body, exchange_name="", routing_key=queue_name,
                                     headers={RETRY_HEADER: attempts})
                message.ack()
                return
            if outcome == Outcome.INVALID:
                log.error("%s: invalid message dead-lettered: %s", queue_name, envelope["error"])
                self._dead_letter(producer, body, queue_name, f"invalid: {envelope['error']}", attempts)
            message.ack()
            if outcome == Outcome.HANDLED and self.on_handled:
                self.on_handled(event_type, envelope)

        return on_message

    def _dead_letter(self, producer: Producer, body, queue_name: str, reason: str, attempts: int) -> None:
        publish_envelope(producer, body if isinstance(body, dict) else {"raw": str(body)},
                         exchange_name=events.DEAD_LETTER_EXCHANGE, routing_key="dead",
                         headers={"x-balcao-reason": reason[:1000], "x-balcao-queue": queue_name,
                                  RETRY_HEADER: attempts})

    def run(self) -> None:
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                with broker_connection(self.broker_url) as conn:
                    conn.ensure_connection(max_retries=3)
                    declare_topology(conn)
                    channel = conn.channel()
                    channel.basic_qos(0, self.prefetch, False)
                    producer = Producer(conn.channel())
                    consumers = []
                    for q in service_queues(self.service):
                        etype = q.routing_key
                        consumers.append(conn.Consumer([q], channel=channel, accept=["json"], no_ack=False,
                                                       callbacks=[self._callback_for(q.name, etype, producer)]))
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
            except Exception:
                log.exception("consumer %s lost its connection; reconnecting in %.1fs", self.service, backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 30)

    def stop(self) -> None:
        self.stopped.set()

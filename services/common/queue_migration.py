"""`balcao migrate-queues`: the classic queues of an earlier version become the quorum queues this
version declares, without losing a message.

RabbitMQ cannot change a queue's type in place (declaring it again with other arguments is refused
with PRECONDITION_FAILED), so for every queue of the topology (the service queues, their `.retry`
queues, the dead-letter queue) that the broker has with other arguments:

1. drain: each message is copied to `<queue>.migrating` (a durable quorum queue, publisher
   confirms) and acknowledged on `<queue>` only once the broker confirmed the copy;
2. the emptied queue is deleted and declared again as this version declares it;
3. replay: each held message is copied back (confirmed), then acknowledged; the holding queue is
   deleted.

Every queue is drained before any is deleted, and the service queues are replayed before the retry
queues, so that a retry queue never dead-letters a message into a queue being re-created.

Restartable: a holding queue found at start is the trace of an interrupted run; its queue is
finished (drained further if still classic, re-declared, replayed). A message that a cut left in
both places (copied, not yet acknowledged) is moved once: identical copies already in the target
are counted and skipped.

The workers must be stopped while it runs (they consume and, through their outbox relays, publish);
the command refuses while a queue to migrate has consumers.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kombu import Connection, Producer, Queue

from .messaging import (
    DEAD_LETTER_ID_HEADER,
    QUORUM,
    RETRY_HEADER,
    QueueMigrationNeeded,
    broker_connection,
    dead_letter_queue,
    declare_queue,
    held_messages,
    is_amqp,
    retry_queue,
    service_queues,
)

HOLDING_SUFFIX = ".migrating"
EXPIRATION_HEADER = "x-balcao-migrating-expiration"  # a retry's per-message TTL, kept while it is held
_COPIED_PROPERTIES = ("message_id", "correlation_id", "reply_to", "timestamp", "type", "app_id")


class MigrationRefused(RuntimeError):
    """The migration cannot run now (workers still consuming, a message arriving meanwhile)."""


@dataclass
class QueueStep:
    queue: Queue
    classic: bool          # the broker has it with other arguments (an earlier version's classic queue)
    messages: int
    consumers: int
    held: bool             # `<queue>.migrating` existed at start: an interrupted run is resumed
    moved: int = 0         # messages in the migrated queue once replayed
    duplicates: int = 0    # identical copies left by an interruption, moved once

    @property
    def holding(self) -> str:
        return self.queue.name + HOLDING_SUFFIX

    @property
    def touched(self) -> bool:
        return self.classic or self.held


def topology_queues() -> list[Queue]:
    """Every queue this version declares on RabbitMQ: retry queues first (they dead-letter into the
    service queues), then the service queues, then the dead-letter queue."""
    from .config import SERVICES
    service = [q for svc in SERVICES for q in service_queues(svc)]
    return [retry_queue(q.name) for q in service] + service + [dead_letter_queue()]


def holding_queue(name: str) -> Queue:
    return Queue(name, durable=True, queue_arguments=dict(QUORUM))


def migrate_queues(broker_url: str, *, say: Callable[[str], None] = print) -> list[QueueStep]:
    """Migrate every queue of the topology that the broker has as a classic queue; returns the
    steps (MigrationRefused when workers still consume a queue to migrate)."""
    if not is_amqp(broker_url):
        say("the broker is not RabbitMQ (in-memory transport): there are no queues to migrate")
        return []
    with broker_connection(broker_url) as conn:
        conn.ensure_connection(max_retries=3)
        steps = [_inspect(conn, q) for q in topology_queues()]
        busy = [s for s in steps if s.classic and s.consumers]
        if busy:
            raise MigrationRefused(
                "workers are still consuming " + ", ".join(f"{s.queue.name} ({s.consumers})" for s in busy)
                + ": stop every worker (`balcao worker ...`), then run `balcao migrate-queues` again")
        todo = [s for s in steps if s.touched]
        say(f"{len(todo)} queue(s) to migrate to quorum queues ({sum(s.messages for s in todo if s.classic)} "
            f"message(s) in classic queues)" + "".join(f"; resuming the interrupted migration of {s.queue.name}"
                                                      for s in todo if s.held))
        for step in steps:                      # 1. drain
            if step.classic:
                _drain(conn, step)
        for step in steps:                      # 2. re-declare
            if step.classic:
                _recreate(conn, step)
        for step in sorted(steps, key=lambda s: s.queue.name.endswith(".retry")):   # 3. replay
            if step.touched:
                _replay(conn, step)
                say(f"{step.queue.name}: {'classic → ' if step.classic else ''}quorum, {step.moved} message(s)"
                    + (f" ({step.duplicates} duplicate(s) of an interrupted run dropped)" if step.duplicates else ""))
    untouched = sum(1 for s in steps if not s.touched)
    migrated = [s for s in steps if s.touched]
    say(f"{len(migrated)} queue(s) migrated to quorum queues ({sum(s.moved for s in migrated)} message(s)); "
        f"{untouched} already quorum")
    return steps


# --------------------------------------------------------------------------- steps

def _inspect(conn: Connection, queue: Queue) -> QueueStep:
    """Declare `queue` as this version does (a missing one is created so); classic when refused."""
    channel = conn.channel()
    classic = False
    try:
        try:
            declare_queue(queue, channel)
        except QueueMigrationNeeded:
            classic = True
            channel = conn.channel()  # the broker closed the refused one
        _, messages, consumers = channel.queue_declare(queue=queue.name, passive=True)
    finally:
        _close(channel)
    return QueueStep(queue=queue, classic=classic, messages=int(messages), consumers=int(consumers),
                     held=_exists(conn, queue.name + HOLDING_SUFFIX))


def _drain(conn: Connection, step: QueueStep) -> None:
    channel = conn.channel()
    try:
        holding_queue(step.holding).bind(channel).declare()
    finally:
        _close(channel)
    already = _keys(conn, step.holding) if step.held else Counter()
    _, dropped = _move(conn, step.queue.name, step.holding, already, hold=True)
    step.duplicates += dropped


def _recreate(conn: Connection, step: QueueStep) -> None:
    from amqp.exceptions import PreconditionFailed
    channel = conn.channel()
    try:
        channel.queue_delete(queue=step.queue.name, if_unused=True, if_empty=True)
    except PreconditionFailed as exc:
        raise MigrationRefused(
            f"{step.queue.name} received a message or a consumer while it was being migrated ({exc}): "
            f"stop every worker and run `balcao migrate-queues` again (what was drained is kept in "
            f"{step.holding})") from exc
    finally:
        _close(channel)
    channel = conn.channel()
    try:
        declare_queue(step.queue, channel)
    finally:
        _close(channel)


def _replay(conn: Connection, step: QueueStep) -> None:
    if not _exists(conn, step.holding):
        return
    already = _keys(conn, step.queue.name) if step.held and not step.classic else Counter()
    _, dropped = _move(conn, step.holding, step.queue.name, already, hold=False)
    step.duplicates += dropped
    _, step.moved, _ = _declare_passive(conn, step.queue.name)
    _, left, _ = _declare_passive(conn, step.holding)
    if left:  # nothing publishes to a holding queue: a message there now is one we must not drop
        raise MigrationRefused(f"{step.holding} still holds {left} message(s) after the replay: run "
                               f"`balcao migrate-queues` again")
    channel = conn.channel()
    try:
        channel.queue_delete(queue=step.holding)  # quorum queues refuse if_empty; checked just above
    finally:
        _close(channel)


# --------------------------------------------------------------------------- plumbing

def _move(conn: Connection, source: str, target: str, already: Counter, *, hold: bool) -> tuple[int, int]:
    """Copy each message of `source` to `target` (default exchange, confirmed by the broker), then
    acknowledge it on `source`. A message with an identical copy counted in `already` is only
    acknowledged. Returns (copied, dropped as duplicates)."""
    channel = conn.channel()
    producer = Producer(conn.channel())
    copied = dropped = 0
    try:
        queue = Queue(source).bind(channel)
        while (message := queue.get(no_ack=False)) is not None:
            key = _key(message)
            if already[key] > 0:
                already[key] -= 1
                message.ack()
                dropped += 1
                continue
            properties = message.properties or {}
            headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
            extra = {name: properties[name] for name in _COPIED_PROPERTIES if properties.get(name) is not None}
            expiration = headers.pop(EXPIRATION_HEADER, None) if not hold else properties.get("expiration")
            if hold and expiration is not None:
                headers[EXPIRATION_HEADER] = str(expiration)  # a held retry must not expire (nowhere to go)
            elif not hold and expiration is not None:
                extra["expiration"] = int(expiration) / 1000
            producer.publish(message.body, exchange="", routing_key=target, content_type=message.content_type,
                             content_encoding=message.content_encoding, delivery_mode=2, headers=headers,
                             **extra)
            message.ack()  # only after the broker confirmed the copy
            copied += 1
    finally:
        _close(producer.channel)
        _close(channel)
    return copied, dropped


def _key(message) -> str:
    """What makes two messages copies of one another: body, id and the attempt/dead-letter headers."""
    headers = message.headers or {}
    properties = message.properties or {}
    digest = hashlib.sha256(message.body if isinstance(message.body, bytes) else str(message.body).encode())
    return "|".join([digest.hexdigest(), str(properties.get("message_id")), str(headers.get(RETRY_HEADER)),
                     str(headers.get(DEAD_LETTER_ID_HEADER))])


def _keys(conn: Connection, name: str) -> Counter:
    """The keys of the messages in `name`, left in place."""
    with held_messages(conn, Queue(name)) as held:
        return Counter(_key(message) for message in held)


def _exists(conn: Connection, name: str) -> bool:
    from amqp.exceptions import NotFound
    try:
        _declare_passive(conn, name)
    except NotFound:
        return False
    return True


def _declare_passive(conn: Connection, name: str):
    channel = conn.channel()
    try:
        return channel.queue_declare(queue=name, passive=True)
    finally:
        _close(channel)


def _close(channel) -> None:
    try:
        channel.close()
    except Exception:  # already closed by the broker after a refused declaration
        pass

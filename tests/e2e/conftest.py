"""What the end-to-end flows share: the secrets a flow handled, and the check that none of them
ever crossed the broker.

Where the product runs on RabbitMQ, `broker_tap` turns on RabbitMQ's firehose tracer for the
run's vhost (`rabbitmqctl trace_on`): the broker copies every message published in the vhost —
to the events exchange, to the dead-letter exchange, through the default exchange (the retry
path: `<queue>.retry` and back) — with its AMQP properties and headers, into a queue of the test.
In every mode the services' outbox rows (everything they published) are read too.
"""
from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import create_engine, text

from services.common import events
from services.common.config import SERVICES
from services.common.sessions import SESSION_COOKIE
from testsupport import wait_until
from testsupport.infra import vhost_of

TRACE_EXCHANGE = "amq.rabbitmq.trace"


class Secrets:
    """Every secret a flow handled: passwords, raw link tokens, invitation tickets, session tokens,
    TOTP secrets, recovery codes, CPF and phone in clear."""

    def __init__(self, *values: str):
        self.values: dict[str, str] = {}
        for value in values:
            self.add("password", value)

    def add(self, kind: str, value: str | None) -> None:
        if value and len(value) >= 6:
            self.values[value] = kind

    def link(self, url: str) -> None:
        """The raw token at the end of an e-mailed link (/convite/<token>, /auth/redefinir-senha/<token>)."""
        self.add("link token", urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])

    def page(self, page) -> None:
        """The invitation ticket a page carries (in its address or its forms)."""
        for ticket in parse_qs(urlsplit(page.url).query).get("ticket", []):
            self.add("invitation ticket", ticket)
        for ticket in page.locator('input[name="ticket"]').evaluate_all("els => els.map(e => e.value)"):
            self.add("invitation ticket", ticket)

    def sessions(self, *contexts) -> None:
        """The session tokens the browsers hold right now (sessions rotate: call it often)."""
        for context in contexts:
            for cookie in context.cookies():
                if cookie["name"].endswith(SESSION_COOKIE):
                    self.add("session token", cookie["value"])

    def personal(self, *, cpf: str = "", phone: str = "") -> None:
        """CPF and phone as typed and as bare digits."""
        for kind, value in (("CPF", cpf), ("phone", phone)):
            self.add(kind, value)
            self.add(kind, re.sub(r"\D", "", value))

    def kinds(self) -> set[str]:
        return set(self.values.values())


@pytest.fixture
def broker_tap(product):
    """On a real broker: a drain() of everything published in the run's vhost (firehose), each as
    {"exchange", "routing_keys", "headers", "properties", "body"}. None in the embedded mode."""
    if not product.broker_url:
        yield None
        return
    from services.common import messaging
    vhost = vhost_of(product.broker_url)
    status, out = product.rabbitmqctl("trace_on", "-p", vhost)
    assert status == 0, out
    name = f"e2e.tap.{uuid.uuid4().hex[:8]}"
    conn = messaging.broker_connection(product.broker_url)
    try:
        channel = conn.default_channel
        channel.queue_declare(queue=name, durable=False, auto_delete=False)
        channel.queue_bind(queue=name, exchange=TRACE_EXCHANGE, routing_key="#")

        def drain() -> list[dict]:
            got = []
            while (message := channel.basic_get(queue=name, no_ack=True)) is not None:
                headers = dict(message.headers or {})
                got.append({"trace": message.delivery_info.get("routing_key", ""),
                            "exchange": _text(headers.get("exchange_name")),
                            "routing_keys": [_text(k) for k in headers.get("routing_keys") or []],
                            "properties": _plain(headers.get("properties") or {}),
                            "body": _text(message.body)})
            return got

        yield drain
        channel.queue_delete(queue=name)
    finally:
        product.rabbitmqctl("trace_off", "-p", vhost)
        conn.release()


def _text(value) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _plain(value):
    if isinstance(value, dict):
        return {_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return _text(value)
    return value


def prove_tap_sees_every_path(product, drain) -> list[dict]:
    """The tap is able to see what the check below looks for: a canary published through the
    default exchange (as a retry is) and one to the dead-letter exchange, each with a header, are
    both in what it drains (sent to routing keys no queue has: the broker drops them after).
    Returns everything drained meanwhile."""
    from kombu import Producer

    from services.common import messaging
    canary = f"canary-{uuid.uuid4().hex}"
    with messaging.broker_connection(product.broker_url) as conn:
        producer = Producer(conn.default_channel)
        for exchange in ("", events.DEAD_LETTER_EXCHANGE):
            producer.publish({"canary": exchange or "default"}, exchange=exchange,
                             routing_key=f"e2e.nowhere.{uuid.uuid4().hex[:6]}", serializer="json",
                             headers={"x-balcao-reason": canary})
    seen: list[dict] = []

    def both_paths():
        seen.extend(drain())
        return {m["exchange"] for m in seen if canary in json.dumps(m["properties"], default=str)} == {
            "", events.DEAD_LETTER_EXCHANGE}

    wait_until(both_paths, timeout=15, message="the tap missed the default or the dead-letter exchange",
               state=lambda: sorted({m["exchange"] for m in seen}))
    return seen


def published_messages(product) -> list[dict]:
    """Every message the services published: each leaves through its service's outbox, so the
    outbox tables hold exactly what went to the broker."""
    found = []
    for svc in SERVICES:
        url = product.database_urls[svc]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        engine = create_engine(url)
        with engine.connect() as conn:
            for (envelope, published_at) in conn.execute(text("SELECT envelope, published_at FROM outbox ORDER BY seq")):
                assert published_at is not None, "an event was never published"
                found.append(envelope if isinstance(envelope, dict) else json.loads(envelope))
        engine.dispose()
    return found


def assert_no_secret_travelled(product, broker_tap, secrets: Secrets, *, expected_types: set[str]) -> None:
    """Nothing that crossed the broker — bodies, AMQP properties, headers, on any exchange —
    carries a password, a password hash or any other secret the flow handled."""
    messages = published_messages(product)
    assert expected_types <= {m["type"] for m in messages}, "the flow should have published its events"
    carriers = [(f"outbox {m['type']}", json.dumps(m, ensure_ascii=False)) for m in messages]
    if broker_tap is not None:
        travelled = prove_tap_sees_every_path(product, broker_tap)

        def unseen() -> list[str]:
            travelled.extend(broker_tap())
            bodies = "\n".join(m["body"] for m in travelled)
            return [m["id"] for m in messages if m["id"] not in bodies]

        wait_until(lambda: not unseen(), timeout=15, message="published events the tap never saw", state=unseen)
        carriers += [(f"{m['trace']} → {m['routing_keys']}", json.dumps(m, ensure_ascii=False, default=str))
                     for m in travelled]
    problems = secret_findings(carriers, secrets)
    assert not problems, problems


def secret_findings(carriers: list[tuple[str, str]], secrets: Secrets) -> list[str]:
    """(where, serialized message) pairs → what secret was found where."""
    problems = set()
    for where, blob in carriers:
        if "$argon2" in blob:
            problems.add(f"a password hash in {where}")
        for value, kind in secrets.values.items():
            if value in blob:
                problems.add(f"a {kind} in {where}")
    return sorted(problems)

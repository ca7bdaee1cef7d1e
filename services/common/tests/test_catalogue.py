"""The event catalogue as a contract that evolves: producers are strict, consumers ignore what
they do not know and read every version of a major up to their own (a rolling deploy never
dead-letters an additive change); the catalogue's producers are the services that really record
each event; each e-mail template's context has a schema, checked at both ends."""
from __future__ import annotations

import ast
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from kombu import Producer
from marshmallow import ValidationError
from sqlalchemy import func, select

from services.common import events, messaging
from services.common.config import SERVICES
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database
from services.invitations import models as inv_models
from services.notifier import consumers as notifier_consumers
from services.notifier import models as notifier_models
from testsupport import private_vhost

ROOT = Path(__file__).resolve().parents[3]
BROKER = "memory://"  # a private vhost of BALCAO_TEST_BROKER_URL when given (the broker is shared)


@pytest.fixture(scope="module", autouse=True)
def _broker_url():
    global BROKER
    with private_vhost(os.environ.get("BALCAO_TEST_BROKER_URL", "memory://")) as url:
        BROKER = url
        yield url


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(messaging, "RETRY_BASE_SECONDS", 0.01)
    with messaging.broker_connection(BROKER) as conn:
        messaging.declare_topology(conn)
        for q in messaging.all_queues():
            q.bind(conn.default_channel).purge()
    return BROKER


def _email_request(keyring, **changes) -> dict:
    key = f"invitation:{uuid.uuid4()}"
    request = {"template": "invitation", "recipient": "carlos@example.com", "locale": "pt_BR",
               "context": {"firm_name": "Contabilidade Alfa", "name": "Carlos Souza", "expires_on": "05/12/2026"},
               "sealed": keyring.seal({"link": "http://balcao.test/convite/abcdefghijklmnopqrstuvwxyz"}),
               "idempotency_key": key, "reference": key}
    request.update(changes)
    return request


def _publish(envelope: dict) -> None:
    with messaging.broker_connection(BROKER) as conn:
        messaging.publish_envelope(Producer(conn.default_channel), envelope)


def _deliveries(config) -> list:
    with database("notifier", config).begin() as s:
        return list(s.execute(select(notifier_models.Delivery)).scalars())


class _RunningNotifier:
    """Today's notifier consumer (its real handlers) on the broker, until the block ends."""

    def __init__(self, config):
        self.handled = threading.Event()
        self.worker = messaging.ConsumerWorker(
            service="notifier", db=database("notifier", config), processed=notifier_models.processed,
            handlers=notifier_consumers.HANDLERS, broker_url=BROKER, config=config,
            on_handled=lambda *_: self.handled.set())
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.worker.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.worker.stop()
        self.thread.join(10)


def _wait_dead_letters(n: int, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while True:
        letters = messaging.list_dead_letters(BROKER)
        if len(letters) >= n or time.monotonic() > deadline:
            return letters
        time.sleep(0.05)


# --------------------------------------------------------------------------- a rolling deploy

def test_a_newer_producers_optional_fields_and_minor_version_are_handled_by_todays_consumer(broker, config):
    """invitations deployed first with version 1.1 of notification.email_requested: a new
    optional payload field and a new context key. Today's notifier sends the e-mail."""
    keyring = KeyRing(config.keys_dir)
    request = _email_request(keyring, priority="high")
    request["context"]["firm_logo_url"] = "http://balcao.test/logo.png"
    envelope = {"id": str(uuid.uuid4()), "type": "notification.email_requested", "version": "1.1",
                "occurred_at": "2026-11-28T12:00:00+00:00", "correlation_id": "rolling-deploy-1",
                "payload": request, "producer_build": "2026.12"}  # and an envelope field it does not know
    with _RunningNotifier(config) as notifier:
        _publish(envelope)
        assert notifier.handled.wait(20), "the newer message was not handled"
    [delivery] = _deliveries(config)
    assert (delivery.idempotency_key, delivery.status) == (request["idempotency_key"], "sent")
    assert "Contabilidade Alfa convidou você" in delivery.subject
    assert messaging.list_dead_letters(BROKER) == []


def test_a_newer_major_version_is_dead_lettered_with_the_reason_not_misread(broker, config):
    keyring = KeyRing(config.keys_dir)
    envelope = events.make_envelope("notification.email_requested", _email_request(keyring), correlation_id="v2")
    envelope["version"] = 2
    with _RunningNotifier(config):
        _publish(envelope)
        [letter] = _wait_dead_letters(1)
    assert "newer than this consumer reads (1.x)" in letter.reason and "replay" in letter.reason
    assert _deliveries(config) == []


def test_a_consumer_reads_every_version_up_to_its_own(monkeypatch):
    payload = {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "c@example.com"}
    envelope = events.make_envelope("link.verified", payload, correlation_id="c")
    assert envelope["version"] == 1  # what every deployed consumer reads today
    assert events.parse_envelope(envelope)[0]["version"] == (1, 0)
    for version in ("1.0", "1.7", 1):
        assert events.parse_envelope({**envelope, "version": version})[1]["email"] == "c@example.com"
    spec = events.CATALOGUE["link.verified"]
    monkeypatch.setitem(events.CATALOGUE, "link.verified", spec._replace(version=3, minor=2))
    assert events.make_envelope("link.verified", payload, correlation_id="c")["version"] == "3.2"
    for version in (1, "2.5", "3.9"):  # older majors and every minor of its own
        assert events.parse_envelope({**envelope, "version": version})[0]["version"][0] == int(str(version)[0])
    with pytest.raises(ValidationError, match="newer"):
        events.parse_envelope({**envelope, "version": "4.0"})


@pytest.mark.parametrize("version", [0, "0.1", "1.x", "v1", True, None, 1.5, "1.2.3", ""])
def test_a_malformed_version_is_invalid(version):
    payload = {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "c@example.com"}
    envelope = events.make_envelope("link.verified", payload, correlation_id="c")
    with pytest.raises(ValidationError) as err:
        events.parse_envelope({**envelope, "version": version})
    assert "version" in err.value.messages


def test_producers_are_strict_consumers_are_not():
    payload = {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "c@example.com"}
    with pytest.raises(ValidationError) as err:
        events.make_envelope("link.verified", {**payload, "emial": "typo"}, correlation_id="c")
    assert "emial" in err.value.messages
    envelope = events.make_envelope("link.verified", payload, correlation_id="c")
    envelope["payload"]["added_later"] = True
    _, loaded = events.parse_envelope(envelope)
    assert "added_later" not in loaded and loaded["email"] == "c@example.com"


# --------------------------------------------------------------------------- producers

def _recorded_events(service: str, root: Path = ROOT) -> dict[str, list[str]]:
    """event type -> places where services/<service> records it (record_event calls, by AST)."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / "services" / service).rglob("*.py")):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record_event":
                where = f"{path.relative_to(root)}:{node.lineno}"
                if len(node.args) < 3 or not isinstance(node.args[2], ast.Constant):
                    raise AssertionError(f"{where}: record_event must name its event type literally")
                found.setdefault(str(node.args[2].value), []).append(where)
    return found


def test_the_catalogue_names_the_services_that_really_record_each_event():
    recorded = {svc: _recorded_events(svc) for svc in SERVICES}
    for etype, spec in events.CATALOGUE.items():
        actual = {svc for svc in SERVICES if etype in recorded[svc]}
        assert set(spec.producers) == actual, f"{etype}: catalogue says {spec.producers}, code records it in {actual}"
    for svc in SERVICES:
        unknown = set(recorded[svc]) - set(events.CATALOGUE)
        assert not unknown, f"{svc} records events missing from the catalogue: {unknown}"
        assert events.produced_by(svc) == set(recorded[svc])


def test_the_producer_scan_sees_a_record_event_call(tmp_path):
    """Control for the test above: the scan does find calls (and refuses a computed type)."""
    fake = tmp_path / "services" / "auth"
    fake.mkdir(parents=True)
    (fake / "services.py").write_text('def f(s):\n    record_event(s, outbox, "link.verified", {})\n')
    assert list(_recorded_events("auth", tmp_path)) == ["link.verified"]
    (fake / "services.py").write_text('def f(s, t):\n    record_event(s, outbox, t, {})\n')
    with pytest.raises(AssertionError, match="literally"):
        _recorded_events("auth", tmp_path)


# --------------------------------------------------------------------------- e-mail contexts

def test_every_template_has_a_context_schema_and_files():
    from services.notifier.rendering import TEMPLATES
    assert set(events.EMAIL_CONTEXTS) == set(TEMPLATES)


@pytest.mark.parametrize("change,problem", [
    (lambda c: c.pop("expires_on"), "expires_on"),               # missing
    (lambda c: c.update(expira_em="05/12/2026"), "expira_em"),    # extra (a typo)
    (lambda c: c.update(expires_on="2026-12-05"), "expires_on"),  # not dd/mm/aaaa
])
def test_recording_an_email_request_checks_its_context_strictly(config, change, problem):
    keyring = KeyRing(config.keys_dir)
    request = _email_request(keyring)
    change(request["context"])
    db = database("invitations", config)
    with pytest.raises(ValidationError) as err:
        with db.begin() as s:
            messaging.record_event(s, inv_models.outbox, "notification.email_requested", request)
    assert problem in err.value.messages["context"]
    with db.begin() as s:
        assert s.execute(select(func.count()).select_from(inv_models.outbox)).scalar_one() == 0


def test_the_notifier_refuses_a_missing_context_key_and_ignores_an_extra_one(config):
    keyring = KeyRing(config.keys_dir)
    db = database("notifier", config)
    handler = notifier_consumers.HANDLERS["notification.email_requested"]
    missing = events.make_envelope("notification.email_requested", _email_request(keyring), correlation_id="m")
    del missing["payload"]["context"]["firm_name"]
    outcome, info = handle_message(db, notifier_models.processed, "notifier", handler, missing, config=config)
    assert outcome == Outcome.INVALID and "firm_name" in info["error"]  # dead-lettered with the reason
    assert _deliveries(config) == []
    extra = events.make_envelope("notification.email_requested", _email_request(keyring), correlation_id="e")
    extra["payload"]["context"]["added_later"] = "x"
    outcome, _ = handle_message(db, notifier_models.processed, "notifier", handler, extra, config=config)
    assert outcome == Outcome.HANDLED
    assert [d.status for d in _deliveries(config)] == ["sent"]


def test_the_notifier_refuses_a_sealed_value_without_its_link(config):
    keyring = KeyRing(config.keys_dir)
    db = database("notifier", config)
    handler = notifier_consumers.HANDLERS["notification.email_requested"]
    envelope = events.make_envelope("notification.email_requested",
                                    _email_request(keyring, sealed=keyring.seal({"url": "http://x.test/"})),
                                    correlation_id="s")
    with pytest.raises(ValidationError, match="link"):
        handle_message(db, notifier_models.processed, "notifier", handler, envelope, config=config)
    assert _deliveries(config) == []

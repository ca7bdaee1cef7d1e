"""Operations plumbing: consumer retries and dead letters (and the operator commands that list
and replay them), periodic jobs, the relay when the broker refuses, /readyz, the metrics port and the
JSON log lines. Runs on the in-memory broker, or on BALCAO_TEST_BROKER_URL when set."""
import io
import json
import logging
import threading
import uuid

import pytest
from kombu import Producer
from sqlalchemy import select

import balcao_cli
from services.common import events, logs, messaging, runtime
from services.common.config import SERVICES
from services.common.runtime import database
from services.invitations import models as inv_models
from testsupport import backends, private_vhost

BROKER = "memory://"  # replaced by a private vhost of BALCAO_TEST_BROKER_URL when given
REFUSED = "amqp://guest:guest@127.0.0.1:1//"
QUEUE = events.queue_name("invitations", "link.verified")


@pytest.fixture(scope="module", autouse=True)
def _broker_url():
    global BROKER
    with private_vhost(backends().broker_url or "memory://") as url:
        BROKER = url
        yield url


@pytest.fixture
def broker(config, monkeypatch):
    """A clean broker: every queue purged; fast retries."""
    monkeypatch.setattr(messaging, "RETRY_BASE_SECONDS", 0.01)
    with messaging.broker_connection(BROKER) as conn:
        messaging.declare_topology(conn)
        for q in messaging.all_queues():
            q.bind(conn.default_channel).purge()
    yield BROKER


def _envelope():
    payload = {"invitation_id": str(uuid.uuid4()), "identity_id": str(uuid.uuid4()), "email": "c@example.com"}
    return events.make_envelope("link.verified", payload, correlation_id="cid-" + uuid.uuid4().hex[:8])


def _publish(body, **kwargs):
    with messaging.broker_connection(BROKER) as conn:
        producer = Producer(conn.default_channel)
        if isinstance(body, dict):
            messaging.publish_envelope(producer, body)
        else:
            producer.publish(body, exchange=events.EXCHANGE, routing_key="link.verified",
                             content_type="application/json", content_encoding="utf-8", delivery_mode=2, **kwargs)


class Running:
    def __init__(self, worker):
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.worker.ready.wait(10)
        return self.worker

    def __exit__(self, *exc):
        self.worker.stop()
        self.thread.join(10)


def _worker(config, handler, on_handled=None):
    handlers = {e: (lambda p, c: None) for e in events.consumed_by("invitations")}
    handlers["link.verified"] = handler
    return messaging.ConsumerWorker(service="invitations", db=database("invitations", config),
                                    processed=inv_models.processed, handlers=handlers, broker_url=BROKER,
                                    on_handled=on_handled, config=config)


def _wait_dead_letters(n, timeout=20):
    import time
    deadline = time.monotonic() + timeout
    while True:
        letters = messaging.list_dead_letters(BROKER)
        if len(letters) >= n or time.monotonic() > deadline:
            return letters
        threading.Event().wait(0.05)


def test_a_failing_handler_is_retried_and_then_succeeds(broker, config):
    calls = []
    done = threading.Event()

    def flaky(payload, ctx):
        calls.append(messaging.correlation_id_var.get())
        if len(calls) < 3:
            raise RuntimeError("database hiccup")

    envelope = _envelope()
    with Running(_worker(config, flaky, on_handled=lambda *_: done.set())):
        _publish(envelope)
        assert done.wait(20), "the message was not retried to success"
    assert calls == [envelope["correlation_id"]] * 3  # the correlation id is set on every attempt
    assert messaging.list_dead_letters(BROKER) == []


def test_a_handler_that_keeps_failing_ends_in_the_dead_letter_queue_and_can_be_replayed(broker, config, capsys,
                                                                                       monkeypatch):
    attempts = []
    healthy = threading.Event()
    handled = threading.Event()

    def handler(payload, ctx):
        attempts.append(1)
        if not healthy.is_set():
            raise ValueError("downstream refused")

    envelope = _envelope()
    with Running(_worker(config, handler, on_handled=lambda *_: handled.set())):
        _publish(envelope)
        letters = _wait_dead_letters(1)
        assert len(letters) == 1
        letter = letters[0]
        assert (letter.type, letter.queue, letter.attempts) == ("link.verified", QUEUE, messaging.MAX_ATTEMPTS)
        assert "ValueError: downstream refused" in letter.reason
        assert len(attempts) == messaging.MAX_ATTEMPTS

        # The operator lists it, fixes the cause and replays it by its id.
        monkeypatch.setenv("BALCAO_BROKER_URL", BROKER)
        assert balcao_cli.main(["dead-letters", "list"]) == 0
        listed = capsys.readouterr().out
        assert letter.id in listed and QUEUE in listed and "downstream refused" in listed
        healthy.set()
        assert balcao_cli.main(["dead-letters", "replay", letter.id]) == 0
        assert f"replayed {letter.id}" in capsys.readouterr().out
        assert handled.wait(20), "the replayed message did not reach its handler"
    assert messaging.list_dead_letters(BROKER) == []
    with database("invitations", config).begin() as s:
        assert s.execute(select(inv_models.processed.c.message_id)).scalars().all() == [envelope["id"]]


def test_replay_leaves_the_other_dead_letters_and_reports_unknown_ids(broker, config, capsys, monkeypatch):
    with Running(_worker(config, lambda p, c: None)):
        _publish({"id": "x", "type": "link.verified"})  # fails validation
        _publish(b"{not json", message_id="raw-1")        # not even JSON
        letters = _wait_dead_letters(2)
    assert len(letters) == 2 and all(d.reason.startswith("invalid") for d in letters)
    assert any("undecodable" in d.reason for d in letters)
    monkeypatch.setenv("BALCAO_BROKER_URL", BROKER)
    assert balcao_cli.main(["dead-letters", "replay", "nope"]) == 1
    assert "not found: nope" in capsys.readouterr().err
    assert len(messaging.list_dead_letters(BROKER)) == 2
    assert balcao_cli.main(["dead-letters", "replay"]) == 2  # neither ids nor --all
    replayed = messaging.replay_dead_letters(BROKER, [letters[0].id])
    assert [d.id for d in replayed] == [letters[0].id]
    assert [d.id for d in messaging.list_dead_letters(BROKER)] == [letters[1].id]
    assert len(messaging.replay_dead_letters(BROKER, None)) == 1
    assert messaging.list_dead_letters(BROKER) == []


def test_the_consumer_keeps_consuming_after_a_malformed_message(broker, config):
    handled = threading.Event()
    with Running(_worker(config, lambda p, c: None, on_handled=lambda *_: handled.set())):
        _publish(b"\xff\xfe garbage")
        good = _envelope()
        _publish(good)
        assert handled.wait(20)
        letters = _wait_dead_letters(1)
    assert len(letters) == 1 and "undecodable" in letters[0].reason and letters[0].queue == QUEUE


def test_retry_delay_grows_exponentially_and_is_bounded():
    delays = [messaging.retry_delay(n) for n in range(1, 12)]
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert delays == sorted(delays) and max(delays) == messaging.RETRY_MAX_SECONDS


def test_relay_leaves_rows_unpublished_while_the_broker_refuses_then_publishes_them(broker, config):
    db = database("invitations", config)
    with db.begin() as s:
        envelope = messaging.record_event(s, inv_models.outbox, "link.verified", _envelope()["payload"])

    failed = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            if "outbox relay" in record.getMessage():
                failed.set()

    watch = Watch()
    logging.getLogger("balcao.messaging").addHandler(watch)
    bad = messaging.OutboxRelay(db, inv_models.outbox, REFUSED, poll_interval=0.05)
    t = threading.Thread(target=bad.run, daemon=True)
    t.start()
    try:
        assert failed.wait(20), "the relay did not report the refused broker"
    finally:
        bad.stop()
        t.join(10)
        logging.getLogger("balcao.messaging").removeHandler(watch)
    with db.begin() as s:
        assert s.execute(select(inv_models.outbox.c.published_at)).scalar_one() is None

    good = messaging.OutboxRelay(db, inv_models.outbox, BROKER, poll_interval=0.05)
    with messaging.broker_connection(BROKER) as conn:
        assert good.publish_pending(Producer(conn.default_channel)) == 1
    with db.begin() as s:
        assert s.execute(select(inv_models.outbox.c.published_at)).scalar_one() is not None
    assert good.publish_pending(Producer(messaging.broker_connection(BROKER).default_channel)) == 0
    assert envelope["type"] == "link.verified"


def test_periodic_jobs_keep_running_after_an_exception(monkeypatch):
    runs = []

    def job(cfg):
        runs.append(cfg)
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        if len(runs) == 3:
            periodic.stop()

    periodic = messaging.PeriodicJob("test.job", 0.0, job, config="cfg")
    periodic.run()  # returns once the job stopped it
    assert runs == ["cfg", "cfg", "cfg"] and periodic.failures == 1


def test_periodic_jobs_come_from_the_consumers_module(config, monkeypatch):
    module = runtime.service_module("notifier", "consumers")
    monkeypatch.setattr(module, "PERIODIC", {"notifier.test": (2.5, lambda cfg: None)}, raising=False)
    jobs = runtime.periodic_jobs("notifier", config)
    assert [(j.name, j.interval, j.config) for j in jobs] == [("notifier.test", 2.5, config)]
    monkeypatch.delattr(module, "PERIODIC")
    assert runtime.periodic_jobs("notifier", config) == []


def test_readyz_needs_the_database_and_the_broker(config):
    import dataclasses
    import dataclasses as dc

    from services.auth.app import create_app
    config = dc.replace(config, smtp_url="smtp://127.0.0.1:2525")  # the distributed mode has a relay
    ok = create_app(dc.replace(config, broker_url=BROKER)).test_client().get("/auth/readyz")
    assert ok.status_code == 200 and ok.json["broker"] == "ok"
    down = create_app(dataclasses.replace(config, broker_url=REFUSED)).test_client().get("/auth/readyz")
    assert down.status_code == 503
    assert down.json["status"] == "unavailable" and down.json["broker"]
    assert "database" not in down.json and "email" not in down.json  # only the broker is blamed
    assert create_app(dataclasses.replace(config, broker_url=REFUSED)).test_client().get(
        "/auth/healthz").status_code == 200  # alive all the same


def test_metrics_count_requests_and_show_the_outbox_lag_on_their_own_port_only(config):
    import dataclasses
    import urllib.request

    from services.common import metrics
    from services.invitations.app import create_app
    cfg = dataclasses.replace(config, broker_url=BROKER)
    client = create_app(cfg).test_client()
    with database("invitations", config).begin() as s:
        messaging.record_event(s, inv_models.outbox, "link.verified", _envelope()["payload"])
    client.get("/convite/healthz")
    assert client.get("/convite/metrics").status_code == 404  # never on the public app
    server = metrics.serve("127.0.0.1:0", metrics.registry_with_state(["invitations"], cfg), what="a test")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.stop()
    assert server.host == "127.0.0.1"
    assert 'balcao_http_requests_total{endpoint="healthz",method="GET",service="invitations",status="200"}' in text
    assert "balcao_http_request_duration_seconds_bucket" in text
    assert 'balcao_outbox_unpublished{service="invitations"} 1.0' in text
    assert 'balcao_outbox_lag_seconds{service="invitations"}' in text
    assert 'balcao_broker_up{service="invitations"} 1.0' in text
    assert f'balcao_queue_depth{{queue="{QUEUE}"}}' in text


def test_log_lines_are_json_with_the_correlation_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("users", "web"))
    logger = logging.getLogger("balcao.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = messaging.correlation_id_var.set("req-42")
    try:
        logger.warning("hello %s", "world")
        try:
            raise KeyError("x")
        except KeyError:
            logger.exception("boom")
    finally:
        messaging.correlation_id_var.reset(token)
        logger.removeHandler(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {k: first[k] for k in ("level", "logger", "message", "service", "role", "correlation_id")} == {
        "level": "WARNING", "logger": "balcao.test.json", "message": "hello world", "service": "users",
        "role": "web", "correlation_id": "req-42"}
    assert first["timestamp"].endswith("+00:00") and "KeyError" in second["exc_info"]


def test_the_embedded_mode_runs_the_periodic_jobs_too(config):
    from services.common.embedded import EmbeddedStack
    stack = EmbeddedStack(config)
    expected = [(job.name, job.interval) for svc in SERVICES
                for job in runtime.periodic_jobs(svc, config)]
    assert ("notifier.retry_due_deliveries", 1.0) in expected
    assert [(job.name, job.interval) for job in stack.periodic] == expected


def test_the_relay_listens_on_its_own_direct_url_when_one_is_given(monkeypatch, tmp_path):
    """Behind a transaction pooler the relay's LISTEN takes BALCAO_<SVC>_DATABASE_LISTEN_URL; a
    service without one listens where its database URL points (nothing changes without a pooler)."""
    from services.common.config import load_config
    from services.common.runtime import outbox_relay
    monkeypatch.setenv("BALCAO_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("BALCAO_NOTIFIER_DATABASE_URL", "postgresql://balcao@pgbouncer:6432/balcao_notifier")
    monkeypatch.setenv("BALCAO_NOTIFIER_DATABASE_LISTEN_URL", "postgresql://balcao@postgres:5432/balcao_notifier")
    monkeypatch.setenv("BALCAO_USERS_DATABASE_URL", "postgresql://balcao@postgres:5432/balcao_users")
    monkeypatch.delenv("BALCAO_USERS_DATABASE_LISTEN_URL", raising=False)
    config = load_config()
    assert outbox_relay("notifier", config).listen_url == "postgresql://balcao@postgres:5432/balcao_notifier"
    assert outbox_relay("users", config).listen_url == "postgresql://balcao@postgres:5432/balcao_users"


def test_migrate_queues_says_when_there_is_nothing_to_migrate_or_no_broker(monkeypatch, capsys):
    monkeypatch.setenv("BALCAO_BROKER_URL", "memory://")
    assert balcao_cli.main(["migrate-queues"]) == 0
    assert "no queues to migrate" in capsys.readouterr().out
    monkeypatch.setenv("BALCAO_BROKER_URL", REFUSED)
    assert balcao_cli.main(["migrate-queues"]) == 1
    assert "the broker (BALCAO_BROKER_URL) did not answer" in capsys.readouterr().err

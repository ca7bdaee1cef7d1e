"""The distributed mode for real: every service under gunicorn plus its worker process, behind
nginx, against RabbitMQ and PostgreSQL (testsupport.infra: BALCAO_TEST_BROKER_URL and
BALCAO_TEST_DATABASE_URL, or testcontainers). Without them these tests are deselected, with a message."""
from __future__ import annotations

import contextlib
import json
import signal
import urllib.error
import urllib.request
import uuid

import pytest
from kombu import Producer

from deploy.stack import Stack, StackError, free_port
from services.common import events, messaging
from services.common.config import SERVICES
from services.common.gateway import PREFIXES
from tests.conftest import wait_until
from testsupport import backends, fresh_postgres_databases, private_vhost


def _get(url: str, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


@contextlib.contextmanager
def stack_env(tag: str):
    """The variables of a stack on fresh databases and a private vhost of this run's broker (and an
    SMTP URL: the distributed mode sends real e-mail; nothing here sends any)."""
    found = backends()
    urls = fresh_postgres_databases(found.database_url, tag + uuid.uuid4().hex[:6])
    with private_vhost(found.broker_url) as broker:
        yield {"BALCAO_BROKER_URL": broker, "BALCAO_DEMO": "0", "BALCAO_SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
               **{f"BALCAO_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with stack_env("deploy") as env:
        running = Stack(env=env, gateway_port=free_port(), workdir=tmp_path_factory.mktemp("stack"))
        running.start(timeout=90)
        try:
            yield running
        finally:
            running.stop()


def access_log(stack, service: str) -> list[dict]:
    """The JSON lines of a service's gunicorn access log (one per request: pid, request line, rid)."""
    lines = []
    for raw in (stack.logs_dir / f"{service}-web.log").read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if record.get("logger") == "gunicorn.access":
            lines.append(record)
    return lines


@pytest.mark.distributed
def test_every_service_answers_through_the_gateway(stack):
    for svc in SERVICES:
        for check in ("healthz", "readyz"):
            status, _, body = _get(f"{stack.url}{PREFIXES[svc]}/{check}")
            assert status == 200, (svc, check, body)
            assert f'"service":"{svc}"' in body.replace(" ", "")


@pytest.mark.distributed
def test_pages_are_routed_by_prefix_without_rewriting(stack):
    status, _, body = _get(stack.url + "/auth/entrar")
    assert status == 200 and "Entrar" in body
    # Each path reaches the service that owns its prefix, unchanged (prefix kept, percent-encoding
    # and query string intact): each service's own access log shows the very request line, and
    # no other service saw it.
    paths = {"auth": "/auth/nao-existe/a%2Fb%20c?x=1&y=%C3%A7", "invitations": "/convite/healthz/nao-existe%2F1",
             "notifier": "/notificacoes/nao%20existe/y?z=2", "documents": "/documentos/nao-existe/%C3%A7?w=1",
             "users": "/nao-existe/a%3Fb?q=%2F"}
    rids = {svc: f"route-{svc}-{uuid.uuid4().hex[:8]}" for svc in paths}
    for svc, path in paths.items():
        status, headers, _ = _get(stack.url + path, {"X-Request-ID": rids[svc]})
        assert status == 404 and headers["X-Request-ID"] == rids[svc], (svc, status)

    def seen() -> dict[str, list[str]]:
        return {svc: [r["message"] for r in access_log(stack, svc) if any(rid in r["message"] for rid in rids.values())]
                for svc in SERVICES}

    found = wait_until(lambda: (lambda got: got if all(got.values()) else None)(seen()), timeout=15,
                       message="the services' access logs never showed the requests", state=seen)
    for svc, path in paths.items():
        [line] = found[svc]  # its own request, and nobody else's
        assert f'"GET {path} HTTP/1.1" 404' in line and line.endswith(f"rid={rids[svc]}"), (svc, line)


@pytest.mark.distributed
def test_request_id_is_passed_through_and_generated_when_absent(stack):
    _, headers, _ = _get(stack.url + "/auth/healthz", {"X-Request-ID": "smoke-123"})
    assert headers.get_all("X-Request-ID") == ["smoke-123"]
    _, headers, _ = _get(stack.url + "/auth/healthz")
    generated = headers.get_all("X-Request-ID")
    assert len(generated) == 1 and len(generated[0]) == 32  # nginx's $request_id


@pytest.mark.distributed
def test_one_process_per_service_and_role(stack):
    assert set(stack.processes) == {f"{s}-{r}" for s in SERVICES for r in ("web", "worker")} | {"gateway"}
    assert all(p.poll() is None for p in stack.processes.values())


@pytest.mark.distributed
def test_a_killed_worker_can_be_restarted(stack):
    queue = events.queue_name("notifier", "notification.email_requested")
    old = stack.processes["notifier-worker"]
    old.kill()
    assert old.wait(10) == -signal.SIGKILL
    before = len(messaging.list_dead_letters(stack.env["BALCAO_BROKER_URL"]))
    # A message for the dead worker waits in its queue: nobody else consumes it.
    with messaging.broker_connection(stack.env["BALCAO_BROKER_URL"]) as conn:
        Producer(conn.default_channel).publish({"id": "no-uuid", "type": "notification.email_requested"},
                                               exchange="", routing_key=queue, serializer="json", delivery_mode=2)
    wait_until(lambda: messaging.queue_depths(stack.env["BALCAO_BROKER_URL"], "notifier").get(queue) == 1,
               timeout=15, message="the message never reached the dead worker's queue")

    new = stack.restart("notifier-worker")
    assert new is stack.processes["notifier-worker"] and new.pid != old.pid
    # The restarted worker really works: it consumes the waiting message (malformed → dead letters).
    letters = wait_until(lambda: [d for d in messaging.list_dead_letters(stack.env["BALCAO_BROKER_URL"])
                                  if d.queue == queue][before:] or None,
                         timeout=60, message="the restarted worker never consumed its queue",
                         state=lambda: (new.poll(), (stack.logs_dir / "notifier-worker.log").read_text()[-1500:]))
    assert len(letters) == 1 and letters[0].reason.startswith("invalid")
    assert messaging.queue_depths(stack.env["BALCAO_BROKER_URL"], "notifier")[queue] == 0
    assert new.poll() is None
    # the web side did not notice
    assert _get(stack.url + "/notificacoes/readyz")[0] == 200


@pytest.mark.distributed
def test_stop_is_idempotent_and_ends_every_process(tmp_path):
    with stack_env("deploystop") as env, Stack(env=env, gateway_port=free_port(), workdir=tmp_path) as stack:
        procs = list(stack.processes.values())
    assert all(p.poll() is not None for p in procs)
    # the workers and webs stopped cleanly on SIGTERM (exit 0), they were not killed
    assert {name: p.returncode for name, p in stack.processes.items() if name != "gateway"} == \
        {name: 0 for name in stack.processes if name != "gateway"}
    stack.stop()  # second call: no error
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(stack.url + "/healthz", timeout=2)


def test_the_stack_refuses_to_start_without_broker_and_databases(tmp_path):
    with pytest.raises(StackError) as err:
        Stack(env={"BALCAO_BROKER_URL": "amqp://x"}, gateway_port=free_port(), workdir=tmp_path)
    assert "BALCAO_AUTH_DATABASE_URL" in str(err.value)


def test_the_stack_refuses_to_start_without_an_smtp_relay(tmp_path):
    env = {"BALCAO_BROKER_URL": "amqp://x", **{f"BALCAO_{svc.upper()}_DATABASE_URL": "postgresql://x/y"
                                                for svc in SERVICES}}
    with pytest.raises(StackError) as err:
        Stack(env=env, gateway_port=free_port(), workdir=tmp_path)
    assert "BALCAO_SMTP_URL" in str(err.value)


@pytest.mark.distributed
def test_metrics_on_their_own_loopback_ports_never_on_the_public_ones(stack):
    for path in ("/metrics", "/auth/metrics", "/convite/metrics/", "/notificacoes//metrics", "/AUTH/METRICS"):
        status, _, body = _get(stack.url + path)
        assert status == 404 and "balcao_" not in body, path
    for svc in SERVICES:  # nor on the web's own port, behind the gateway
        status, _, body = _get(f"http://127.0.0.1:{stack.web_ports[svc]}{PREFIXES[svc]}/metrics")
        assert status == 404 and "balcao_" not in body, svc
    # the web's metrics port: every gunicorn worker's counters, aggregated by the master
    web_metrics = f"http://127.0.0.1:{stack.metrics_ports['invitations-web']}/metrics"
    sample = 'balcao_http_requests_total{endpoint="healthz",method="GET",service="invitations",status="200"} '

    def healthz_count() -> float:
        status, headers, body = _get(web_metrics)
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        return sum(float(line[len(sample):]) for line in body.splitlines() if line.startswith(sample))

    before = healthz_count()
    for _ in range(6):
        _get(stack.url + "/convite/healthz")
    assert healthz_count() == before + 6
    status, _, body = _get(f"http://127.0.0.1:{stack.metrics_ports['notifier-worker']}/metrics")
    assert status == 200
    assert 'balcao_queue_depth{queue="notifier.notification.email_requested"}' in body
    assert 'balcao_broker_up{service="notifier"} 1.0' in body
    assert 'balcao_outbox_lag_seconds{service="notifier"}' in body


@pytest.mark.distributed
def test_readyz_reports_database_and_broker(stack):
    import json
    status, _, body = _get(stack.url + "/auth/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready", "service": "auth", "database": "ok",
                                                  "broker": "ok"}

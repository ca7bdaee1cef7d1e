"""The distributed mode for real: every service under gunicorn plus its worker process, behind
nginx, against RabbitMQ and PostgreSQL (BALCAO_TEST_BROKER_URL, BALCAO_TEST_DATABASE_URL).
Without those variables tests/conftest.py deselects these tests and says so."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid

import pytest

from deploy.stack import Stack, StackError, free_port
from services.common.config import SERVICES
from services.common.gateway import PREFIXES
from services.common.testing import _fresh_postgres_databases


def _get(url: str, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    urls = _fresh_postgres_databases(os.environ["BALCAO_TEST_DATABASE_URL"], "deploy" + uuid.uuid4().hex[:6])
    env = {"BALCAO_BROKER_URL": os.environ["BALCAO_TEST_BROKER_URL"], "BALCAO_DEMO": "0",
           **{f"BALCAO_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()}}
    running = Stack(env=env, gateway_port=free_port(), workdir=tmp_path_factory.mktemp("stack"))
    running.start(timeout=90)
    try:
        yield running
    finally:
        running.stop()


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
    assert status == 200
    assert "Entrar" in body
    # an unknown path under a service prefix reaches that service (its own 404 page), not users
    status, _, _ = _get(stack.url + "/convite/healthz/nao-existe")
    assert status == 404


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
    old = stack.processes["notifier-worker"]
    old.kill()
    old.wait(10)
    new = stack.restart("notifier-worker")
    assert new is stack.processes["notifier-worker"] and new.pid != old.pid
    assert new.poll() is None
    # the web side did not notice
    assert _get(stack.url + "/notificacoes/readyz")[0] == 200


@pytest.mark.distributed
def test_stop_is_idempotent_and_ends_every_process(tmp_path):
    urls = _fresh_postgres_databases(os.environ["BALCAO_TEST_DATABASE_URL"], "deploystop" + uuid.uuid4().hex[:4])
    env = {"BALCAO_BROKER_URL": os.environ["BALCAO_TEST_BROKER_URL"],
           **{f"BALCAO_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()}}
    with Stack(env=env, gateway_port=free_port(), workdir=tmp_path) as stack:
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

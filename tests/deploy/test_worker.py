"""`balcao worker` stops cleanly on SIGTERM, exits non-zero when a thread dies, and never logs a
broker password; `balcao web` is configured as the deployment expects."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from services.common import runtime, worker
from services.common.config import SERVICES
from services.common.keys import ensure_keys

from ._util import ROOT, balcao


def _worker_env(tmp_path) -> dict:
    ensure_keys(tmp_path / "keys")
    env = {"BALCAO_VAR_DIR": str(tmp_path), "BALCAO_KEYS_DIR": str(tmp_path / "keys"),
           "BALCAO_BROKER_URL": "memory://", "BALCAO_SECRET_KEY": "test-secret",
           "BALCAO_SMTP_URL": "smtp://127.0.0.1:1"}  # the distributed mode needs a relay (none used here)
    env.update({f"BALCAO_{svc.upper()}_DATABASE_URL": f"sqlite:///{tmp_path / (svc + '.sqlite3')}"
                for svc in SERVICES})
    return env


class LineReader:
    """Reads a pipe in a thread; `wait_for(text)` blocks until a line contains it (no sleeps)."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe):
        for line in iter(pipe.readline, ""):
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout}s:\n{''.join(self.lines)}") from None
            if line is None:
                raise AssertionError(f"the process ended before saying {text!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 5) -> str:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return "".join(self.lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_process_stops_cleanly_on_signal(tmp_path, sig):
    env = _worker_env(tmp_path)
    migrated = balcao("migrate", "--service", "notifier", env=env)
    assert migrated.returncode == 0, migrated.stderr
    proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", "worker", "notifier"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        log = LineReader(proc.stderr)
        line = log.wait_for("consuming")
        record = json.loads(line)  # one JSON object per line, the service on every one
        assert (record["service"], record["role"], record["level"]) == ("notifier", "worker", "INFO")
        assert "periodic jobs: notifier.retry_due_deliveries every" in record["message"]
        proc.send_signal(sig)
        assert proc.wait(15) == 0
        output = log.rest()
        assert "stopped" in output
        assert "Traceback" not in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _with_relay(config):
    """The in-process test config with an SMTP relay: `balcao worker` refuses to start without one."""
    import dataclasses
    return dataclasses.replace(config, smtp_url="smtp://127.0.0.1:1")


class _Runner:
    def __init__(self, run):
        self._run = run
        self.ready = threading.Event()
        self.stopped = threading.Event()

    def run(self):
        self._run(self)

    def stop(self):
        self.stopped.set()


def _until_stopped(runner):
    runner.ready.set()
    runner.stopped.wait(30)


def test_a_thread_that_dies_makes_the_worker_exit_non_zero(monkeypatch, config):
    def crash(_runner):
        raise RuntimeError("database exploded")

    consumer = _Runner(_until_stopped)
    monkeypatch.setattr(worker, "_configure_logging", lambda *a: None)
    monkeypatch.setattr(runtime, "consumer_worker", lambda svc, cfg: consumer)
    monkeypatch.setattr(runtime, "outbox_relay", lambda svc, cfg, **kw: _Runner(crash))
    with pytest.raises(SystemExit) as exited:
        worker.run_worker("notifier", _with_relay(config))
    assert exited.value.code == 1
    assert consumer.stopped.is_set()  # the healthy thread was stopped before exiting


def test_a_thread_that_returns_on_its_own_also_counts_as_dead(monkeypatch, config):
    monkeypatch.setattr(worker, "_configure_logging", lambda *a: None)
    monkeypatch.setattr(runtime, "consumer_worker", lambda svc, cfg: _Runner(lambda r: None))
    monkeypatch.setattr(runtime, "outbox_relay", lambda svc, cfg, **kw: _Runner(_until_stopped))
    with pytest.raises(SystemExit) as exited:
        worker.run_worker("notifier", _with_relay(config))
    assert exited.value.code == 1


def test_the_relay_polls_every_200_ms(monkeypatch, config):
    seen = {}

    def relay(svc, cfg, **kwargs):
        seen.update(kwargs, service=svc)
        return _Runner(lambda r: None)

    monkeypatch.setattr(worker, "_configure_logging", lambda *a: None)
    monkeypatch.setattr(runtime, "consumer_worker", lambda svc, cfg: _Runner(_until_stopped))
    monkeypatch.setattr(runtime, "outbox_relay", relay)
    with pytest.raises(SystemExit):
        worker.run_worker("users", _with_relay(config))
    assert seen == {"poll_interval": 0.2, "service": "users"}


def test_the_broker_password_never_reaches_the_log():
    assert worker._redact("amqp://balcao:s3cr3t@rabbitmq:5672//") == "amqp://balcao:***@rabbitmq:5672//"
    assert "s3cr3t" not in worker._redact("amqps://u:s3cr3t@h//")
    assert worker._redact("memory://") == "memory://"


def test_gunicorn_settings(monkeypatch):
    monkeypatch.delenv("BALCAO_FORWARDED_ALLOW_IPS", raising=False)
    opts = worker.gunicorn_options("auth", bind="0.0.0.0:8000", workers=3)
    assert {k: opts[k] for k in ("bind", "workers", "worker_class", "threads", "timeout", "graceful_timeout",
                                  "accesslog", "forwarded_allow_ips", "preload_app")} == {
        "bind": "0.0.0.0:8000", "workers": 3, "worker_class": "gthread", "threads": 4, "timeout": 30,
        "graceful_timeout": 10, "accesslog": "-", "forwarded_allow_ips": "127.0.0.1", "preload_app": True}
    # preload_app: every worker drops inherited engines and starts its idle trimmer after the fork
    assert {"pre_fork", "post_fork", "post_worker_init", "pre_request", "post_request"} <= set(opts)
    monkeypatch.setenv("BALCAO_FORWARDED_ALLOW_IPS", "10.0.0.2,10.0.0.3")
    assert worker.gunicorn_options("auth", bind="x:1", workers=1)["forwarded_allow_ips"] == "10.0.0.2,10.0.0.3"


def test_a_forked_web_worker_opens_its_own_database_connections(tmp_path):
    """preload_app builds the app in the master: a connection the master holds must never be used
    by a worker (two processes on one socket). post_fork forgets them without closing them."""
    db = runtime.database("users", worker_config(tmp_path))
    from sqlalchemy import text
    with db.engine.connect() as conn:  # the master's connection, back in its pool
        conn.execute(text("SELECT 1"))
    assert db.engine.pool.checkedin() == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            worker.release_engines_after_fork()
            before = db.engine.pool.checkedin()
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            os.write(write, f"{before}".encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 100) == b"0" and status == 0  # nothing inherited; a connection of its own works
    with db.engine.connect() as conn:  # the master's connection is still good
        assert conn.execute(text("SELECT 1")).scalar() == 1
    db.engine.dispose()


def worker_config(tmp_path):
    from testsupport import make_test_config
    return make_test_config(tmp_path / "var")


def test_an_idle_web_worker_gives_freed_heap_back_once_per_busy_spell():
    trims = []
    trimmer = worker.IdleTrimmer(idle=2.0)
    trimmer._trim = trims.append
    assert not trimmer.maybe_trim(100.0)  # nothing served yet: nothing to give back
    trimmer.touch()
    now = trimmer.last_activity
    assert not trimmer.maybe_trim(now + 1.0)  # still busy
    assert trimmer.maybe_trim(now + 2.5) and trims == [0]
    assert not trimmer.maybe_trim(now + 10.0)  # once, until it serves again
    trimmer.touch()
    assert trimmer.maybe_trim(trimmer.last_activity + 3.0) and trimmer.trims == 2


def test_the_master_compiles_the_templates_once_and_leaves_a_broken_one_to_its_request(tmp_path, caplog):
    from flask import Flask
    (tmp_path / "ok.html").write_text("{{ 1 + 1 }}")
    (tmp_path / "broken.html").write_text("{% if %}")
    app = Flask(__name__, template_folder=str(tmp_path))
    assert worker.compile_templates(app) == 1
    assert "broken.html does not compile" in caplog.text
    loads = []
    app.jinja_env.loader.get_source = lambda env, name: loads.append(name)  # a cached template is not read again
    assert app.jinja_env.get_template("ok.html").render() == "2" and loads == []


def test_gunicorn_knows_every_setting_we_pass():
    """A typo in a setting name would be silently skipped by run_web: catch it here."""
    from gunicorn.config import Config
    known = Config().settings
    opts = worker.gunicorn_options("users", bind="127.0.0.1:1", workers=1)
    unknown = set(opts) - set(known) - {"control_socket_disable"}  # only in gunicorn >= 27
    assert not unknown


def test_web_process_serves_the_service_and_stops_on_sigterm(tmp_path):
    import socket
    import urllib.request
    env = _worker_env(tmp_path)
    assert balcao("migrate", "--service", "invitations", env=env).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", "web", "invitations", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log = LineReader(proc.stdout)
        log.wait_for("Booting worker")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/convite/readyz",
                                         headers={"X-Request-ID": "deploy-test-1"})
        deadline = time.monotonic() + 20
        while True:  # the worker process imports the app after "Booting worker"
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    body, rid = resp.read(), resp.headers["X-Request-ID"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
        assert b'"ready"' in body and rid == "deploy-test-1"
        assert "rid=deploy-test-1" in log.wait_for("/convite/readyz")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- metrics on their own port

def _free_ports(n: int) -> list[int]:
    from deploy.stack import free_ports
    return free_ports(n)


def _http(url: str, timeout: float = 5) -> tuple[int, str]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_http(url: str, timeout: float = 60) -> tuple[int, str]:
    """The first answer of `url` (the server may still be starting: connection refused)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _http(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _counter(body: str, sample: str) -> float:
    return sum(float(line[len(sample) + 1:]) for line in body.splitlines() if line.startswith(sample + " "))


@pytest.fixture
def spawn():
    procs = []

    def start(args, env, unset=()):
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        for name in unset:
            full_env.pop(name, None)
        proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", *args], cwd=ROOT, env=full_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc, LineReader(proc.stderr)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


HEALTHZ_SAMPLE = 'balcao_http_requests_total{endpoint="healthz",method="GET",service="invitations",status="200"}'


def test_web_metrics_of_every_gunicorn_worker_on_the_metrics_port_only(tmp_path, spawn):
    env = _worker_env(tmp_path)
    assert balcao("migrate", "--service", "invitations", env=env).returncode == 0
    port, metrics_port = _free_ports(2)
    proc, log = spawn(["web", "invitations", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                      {**env, "BALCAO_METRICS_BIND": f"127.0.0.1:{metrics_port}"})
    log.wait_for(f"metrics of the invitations web on http://127.0.0.1:{metrics_port}/metrics")
    assert _wait_http(f"http://127.0.0.1:{port}/convite/healthz")[0] == 200
    for _ in range(19):  # a new connection each: gunicorn's two workers share them
        assert _http(f"http://127.0.0.1:{port}/convite/healthz")[0] == 200
    for path in ("/convite/metrics", "/metrics"):
        status, body = _http(f"http://127.0.0.1:{port}{path}")
        assert status == 404 and "balcao_" not in body, path
    status, body = _http(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    assert _counter(body, HEALTHZ_SAMPLE) == 20.0  # the sum over both workers' multiprocess files
    assert proc.poll() is None


def test_worker_metrics_on_the_metrics_port(tmp_path, spawn):
    env = _worker_env(tmp_path)
    assert balcao("migrate", "--service", "notifier", env=env).returncode == 0
    [metrics_port] = _free_ports(1)
    _proc, log = spawn(["worker", "notifier"], {**env, "BALCAO_METRICS_BIND": f"127.0.0.1:{metrics_port}"})
    log.wait_for("consuming")
    status, body = _http(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    assert 'balcao_broker_up{service="notifier"} 1.0' in body
    assert 'balcao_outbox_unpublished{service="notifier"} 0.0' in body


def test_the_embedded_mode_serves_metrics_on_a_loopback_port_not_the_public_one(tmp_path, spawn):
    port, metrics_port = _free_ports(2)
    env = {"BALCAO_VAR_DIR": str(tmp_path), "PORT": str(port), "BALCAO_DEMO": "0",
           "BALCAO_METRICS_BIND": f"127.0.0.1:{metrics_port}"}
    unset = ["BALCAO_BROKER_URL", "BALCAO_SMTP_URL", "BALCAO_KEYS_DIR", "PROMETHEUS_MULTIPROC_DIR",
             *[f"BALCAO_{svc.upper()}_DATABASE_URL" for svc in SERVICES]]
    _proc, _log = spawn(["run"], env, unset)
    assert _wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)[0] == 200
    assert _http(f"http://127.0.0.1:{port}/convite/healthz")[0] == 200
    for path in ("/metrics", "/auth/metrics", "/convite/metrics", "/notificacoes/metrics"):
        status, body = _http(f"http://127.0.0.1:{port}{path}")
        assert status == 404 and "balcao_" not in body, path
    status, body = _http(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    assert _counter(body, HEALTHZ_SAMPLE) == 1.0
    for svc in SERVICES:
        assert f'balcao_outbox_unpublished{{service="{svc}"}}' in body


def test_metrics_bind_defaults_to_loopback_with_a_port_per_process():
    from services.common.metrics import default_bind, parse_bind
    binds = [default_bind(None, "embedded")] + [default_bind(svc, role) for svc in SERVICES
                                                for role in ("web", "worker")]
    assert binds[0] == "127.0.0.1:9464" and binds[1] == "127.0.0.1:9464"  # `balcao run` and auth's web
    assert len(set(binds[1:])) == 2 * len(SERVICES)  # one host can run every web and worker
    assert all(b.startswith("127.0.0.1:") for b in binds)
    assert parse_bind("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_bind("9500") == ("127.0.0.1", 9500) and parse_bind("[::1]:9500") == ("::1", 9500)
    assert parse_bind("off") is None
    with pytest.raises(ValueError):
        parse_bind("localhost:metrics")


@pytest.mark.parametrize("args", [["worker", "notifier"], ["web", "invitations", "--bind", "127.0.0.1:1"], ["run"]])
def test_a_metrics_bind_that_is_no_address_stops_the_process_with_the_reason(tmp_path, args):
    env = {**_worker_env(tmp_path), "BALCAO_METRICS_BIND": "localhost:metrics", "BALCAO_DEMO": "0"}
    result = balcao(*args, env=env, timeout=120)
    assert result.returncode != 0
    assert "BALCAO_METRICS_BIND must be host:port or off, not 'localhost:metrics'" in result.stderr

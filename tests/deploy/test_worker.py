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
        "graceful_timeout": 10, "accesslog": "-", "forwarded_allow_ips": "127.0.0.1", "preload_app": False}
    monkeypatch.setenv("BALCAO_FORWARDED_ALLOW_IPS", "10.0.0.2,10.0.0.3")
    assert worker.gunicorn_options("auth", bind="x:1", workers=1)["forwarded_allow_ips"] == "10.0.0.2,10.0.0.3"


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

"""The embedded mode (`make run` / `balcao run`): the whole product in one process.

All four apps on one origin (the same prefix routing as the nginx gateway), every service's
consumers and outbox relay in threads, the in-memory kombu broker by default, SQLite files
under BALCAO_VAR_DIR, and the dev mailbox page instead of SMTP unless BALCAO_SMTP_URL is set.
Served by gunicorn (one worker, threads); the background threads live in that worker.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading

from sqlalchemy import text

from .config import SERVICES, Config
from .gateway import PrefixDispatcher
from .keys import ensure_keys
from .runtime import consumer_worker, database, migrate, outbox_relay, periodic_jobs, service_module

log = logging.getLogger("balcao.embedded")


class EmbeddedStack:
    def __init__(self, config: Config):
        self.config = config
        self.workers = [consumer_worker(svc, config) for svc in SERVICES]
        self.relays = [outbox_relay(svc, config, poll_interval=0.5) for svc in SERVICES]
        self.periodic = [job for svc in SERVICES for job in periodic_jobs(svc, config)]
        self.threads: list[threading.Thread] = []
        apps = {svc: service_module(svc, "app").create_app(config) for svc in SERVICES}
        self.wsgi = PrefixDispatcher(apps, extra={"/healthz": self.healthz})

    def start(self) -> None:
        for runner in [*self.workers, *self.relays, *self.periodic]:
            t = threading.Thread(target=runner.run, name=f"balcao-{type(runner).__name__}", daemon=True)
            t.start()
            self.threads.append(t)
        for w in self.workers:
            w.ready.wait(10)

    def stop(self) -> None:
        for runner in [*self.workers, *self.relays, *self.periodic]:
            runner.stop()
        for t in self.threads:
            t.join(5)

    def ready(self) -> tuple[bool, dict]:
        detail = {}
        for svc in SERVICES:
            try:
                with database(svc, self.config).engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                detail[svc] = "ok"
            except Exception as exc:
                detail[svc] = f"database unavailable: {exc}"[:200]
        detail["consumers"] = "ok" if all(w.ready.is_set() for w in self.workers) else "starting"
        detail["threads"] = "ok" if all(t.is_alive() for t in self.threads) else "stopped"
        return all(v == "ok" for v in detail.values()), detail

    def healthz(self, environ, start_response):
        import json
        ok, detail = self.ready()
        body = json.dumps({"status": "ready" if ok else "unavailable", **detail}).encode()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store")])
        return [body]


def prepare(config: Config) -> bool:
    """Keys, migrations and (unless BALCAO_DEMO=0) the demo data. Returns True if seeded now."""
    ensure_keys(config.keys_dir)
    for svc in SERVICES:
        migrate(svc, config)
    _announce_to_a_new_documents_service(config)
    if config.demo:
        from services.provision import seed_demo
        return seed_demo(config)
    return False


def _announce_to_a_new_documents_service(config: Config) -> None:
    """A var/ made before the documents service existed: its firms, companies and people are
    announced once (users' `announce_state`), so that their Documentos pages exist."""
    with database("documents", config).engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM firms LIMIT 1")).first() is not None:
            return
    with database("users", config).engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM firms LIMIT 1")).first() is None:
            return
    from services.users import pii
    from services.users.services import announce_state
    pii.configure(config)
    with database("users", config).begin() as session:
        counts = announce_state(session)
    log.info("announced to the documents service: %s", counts)


def _banner(config: Config) -> str:
    lines = ["", "Balcão — Portal do Cliente (modo embutido)", f"  Endereço:  {config.public_url}/"]
    if config.dev_mailbox:
        lines.append(f"  E-mails:   {config.public_url}/notificacoes/caixa-de-entrada  "
                     "(caixa de entrada de desenvolvimento, só neste computador)")
    else:
        from .worker import _redact
        lines.append(f"  E-mails:   enviados por SMTP para {_redact(config.smtp_url or '')}")
    lines.append(f"  Dados:     {config.var_dir}")
    if config.demo:
        from services.provision import DEMO_LOGINS
        lines.append("  Acessos de demonstração (e-mail / senha):")
        for name, email, password, role in DEMO_LOGINS:
            lines.append(f"    {email:<26} {password:<18} {name}, {role}")
    return "\n".join(lines) + "\n"


def embedded_config(config: Config, *, host: str = "127.0.0.1") -> Config:
    """`config` marked as the embedded mode's, serving on `host` (what decides the dev mailbox)."""
    return dataclasses.replace(config, embedded=True, bind_host=host)


def run_embedded(config: Config, *, host: str = "127.0.0.1") -> None:
    """`balcao run`: refuses to start (non-zero exit, the reason on stderr) when e-mail would have
    nowhere safe to go: no BALCAO_SMTP_URL on a bind other than loopback."""
    from gunicorn.app.base import BaseApplication

    from .worker import limit_malloc_arenas
    config = embedded_config(config, host=host)
    if config.mail_problem:
        raise SystemExit(f"balcao run: {config.mail_problem}")
    limit_malloc_arenas()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from .metrics import metrics_bind as resolve_metrics_bind
    metrics_bind = resolve_metrics_bind(config, None, "embedded")  # a bad value stops here, with the reason
    # Migrations and the demo seed run in a short-lived child process: what they import and
    # allocate does not stay resident in the gunicorn master for the life of the server.
    child = multiprocessing.get_context("fork").Process(target=prepare, args=(config,), name="balcao-prepare")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"preparing the databases failed (exit code {child.exitcode}); see the messages above")
    print(_banner(config), flush=True)

    class EmbeddedApplication(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{config.bind_host}:{config.port}")
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 8)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("accesslog", None)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 27
                self.cfg.set("control_socket_disable", True)

        def load(self):  # in the one gunicorn worker, where the counters live
            from . import metrics
            stack = EmbeddedStack(config)
            stack.start()
            metrics.serve(metrics_bind, metrics.registry_with_state(SERVICES, config), what="the embedded mode")
            return stack.wsgi

    EmbeddedApplication().run()

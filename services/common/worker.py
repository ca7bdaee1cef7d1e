"""Entry points of the distributed mode: one service's web app under gunicorn (`balcao web`)
and one service's consumers + outbox relay (`balcao worker`).

Both read everything from the `Config` (environment variables only); neither knows about the
other services: the gateway (deploy/gateway) puts the web processes on one origin and the
broker (RabbitMQ) connects the workers.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from .config import SERVICES, Config

log = logging.getLogger("balcao.worker")

STOP_TIMEOUT = 15.0


def _configure_logging(service: str, role: str) -> None:
    """JSON lines on stderr (services/common/logs.py)."""
    from .logs import configure_logging
    configure_logging(service, role, stream=sys.stderr)


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise SystemExit(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")


def _check_config(service: str, role: str, config: Config) -> None:
    """The distributed mode refuses to start without what it cannot do without (BALCAO_SMTP_URL:
    it has no dev mailbox): the reason on stderr, exit status 1, before anything is served."""
    if config.mail_problem:
        raise SystemExit(f"balcao {role} {service}: {config.mail_problem}")


# --------------------------------------------------------------------------- web

def _child_exit(_server, worker) -> None:
    """gunicorn hook: a dead worker's live gauges leave the multiprocess metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)


_master_metrics: list = []


def _metrics_hooks(service: str, metrics_bind: str) -> dict:
    """gunicorn hooks of the master: once the workers' port is bound, serve the metrics of every
    worker (aggregated from PROMETHEUS_MULTIPROC_DIR) at `metrics_bind` — never on the public port."""

    def when_ready(_server) -> None:
        from . import metrics
        served = metrics.serve(metrics_bind, metrics.process_registry(), what=f"the {service} web")
        if served is not None:
            _master_metrics.append(served)

    def on_exit(_server) -> None:
        while _master_metrics:
            _master_metrics.pop().stop()

    return {"when_ready": when_ready, "on_exit": on_exit}


WEB_THREADS = 4  # request threads per gunicorn worker of `balcao web` (gthread)


def gunicorn_options(service: str, *, bind: str, workers: int, metrics_bind: str | None = None) -> dict:
    """The gunicorn settings of a service's web process (public for tests and operators).
    `metrics_bind`: where the master serves the workers' metrics (None: not served)."""
    from .logs import formatter_config
    return {
        **(_metrics_hooks(service, metrics_bind) if metrics_bind else {}),
        **_fork_hooks(),
        "child_exit": _child_exit,
        "bind": bind,
        "workers": max(1, int(workers)),
        "worker_class": "gthread",
        "threads": WEB_THREADS,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": f'{service} %(h)s "%(r)s" %(s)s %(b)s %(L)ss rid=%({{x-request-id}}i)s',
        "forwarded_allow_ips": os.environ.get("BALCAO_FORWARDED_ALLOW_IPS", "127.0.0.1"),
        "proc_name": f"balcao-{service}-web",
        # The app is built once in the master and the workers share its pages copy-on-write (PSS);
        # nothing built by create_app holds a connection or a thread (post_fork checks the engines).
        "preload_app": True,
        # gunicorn >= 27 opens a control socket at one fixed path per user: several web processes
        # on one host would fight over it. Settings unknown to older gunicorns are skipped.
        "control_socket_disable": True,
        "logconfig_dict": {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"balcao": formatter_config(service, "web")},
            "handlers": {
                "error": {"class": "logging.StreamHandler", "formatter": "balcao", "stream": "ext://sys.stderr"},
                "access": {"class": "logging.StreamHandler", "formatter": "balcao", "stream": "ext://sys.stdout"},
            },
            "root": {"level": "INFO", "handlers": ["error"]},
            "loggers": {
                "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
                "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            },
        },
    }


IDLE_TRIM_SECONDS = 2.0  # a web worker idle this long gives freed heap back (IdleTrimmer)


def compile_templates(app) -> int:
    """Compile every Jinja template of the app once, in the gunicorn master (preload_app): the
    workers share the compiled code instead of each compiling the pages it serves. A template
    that does not compile is left for its first request, which reports it as before."""
    env = app.jinja_env
    compiled = 0
    for name in env.list_templates():
        try:
            env.get_template(name)
            compiled += 1
        except Exception as exc:  # reported again (with the request) when a page renders it
            log.warning("template %s does not compile: %s", name, exc)
    return compiled


def release_engines_after_fork() -> None:
    """In a freshly forked worker: forget the database connections inherited from the master
    (never closing them: they are the master's) so that each worker opens its own. create_app
    connects nowhere, so there are none today; this keeps it true if that ever changes."""
    from .runtime import _databases
    for db in list(_databases.values()):
        db.engine.dispose(close=False)


class IdleTrimmer:
    """Gives freed heap back to the kernel (glibc `malloc_trim(0)`) once a web worker has been
    idle for IDLE_TRIM_SECONDS after serving requests. An argon2id verify allocates 19 MiB and
    glibc keeps that block for the next one (its dynamic mmap threshold): a busy auth worker
    keeps it — no page faults per login — and an idle one goes back to its baseline RSS."""

    def __init__(self, idle: float = IDLE_TRIM_SECONDS):
        self.idle = idle
        self.last_activity = 0.0
        self.dirty = False
        self.trims = 0
        self._trim = None
        try:
            import ctypes
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            pass

    def touch(self) -> None:
        import time
        self.last_activity = time.monotonic()
        self.dirty = True

    def maybe_trim(self, now: float) -> bool:
        if not self.dirty or self._trim is None or now - self.last_activity < self.idle:
            return False
        self.dirty = False
        self._trim(0)
        self.trims += 1
        return True

    def start(self) -> None:
        import time

        def loop():
            while True:
                time.sleep(self.idle / 2)
                self.maybe_trim(time.monotonic())

        threading.Thread(target=loop, name="balcao-idle-trim", daemon=True).start()


_trimmer: list[IdleTrimmer] = []


def _malloc_trim() -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fork_hooks() -> dict:
    """gunicorn hooks around preload_app: the master freezes what it imported and built out of
    the garbage collector's reach (a collection in a worker would otherwise write to — and so
    copy — every shared page holding an object header), each worker drops inherited engines and
    starts its idle trimmer (threads are created after the fork, never inherited)."""

    def pre_fork(_server, _worker) -> None:
        import gc
        gc.freeze()
        _malloc_trim()  # what building the app freed (auth's dummy argon2id hashes) is not inherited

    def post_fork(_server, _worker) -> None:
        release_engines_after_fork()

    def post_worker_init(_worker) -> None:
        trimmer = IdleTrimmer()
        _trimmer[:] = [trimmer]
        trimmer.start()

    def pre_request(_worker, _req) -> None:
        if _trimmer:
            _trimmer[0].touch()

    def post_request(_worker, _req, _environ, _resp) -> None:
        if _trimmer:
            _trimmer[0].touch()

    return {"pre_fork": pre_fork, "post_fork": post_fork, "post_worker_init": post_worker_init,
            "pre_request": pre_request, "post_request": post_request}


ARGON2_BLOCK_MB = 20  # services.auth.services.PASSWORD_HASHER: m = 19 MiB, one block per verify


def keep_hash_memory_while_busy(concurrent: int) -> None:
    """auth's web: each argon2id verify mallocs and frees 19 MiB. By default glibc gives that back
    to the kernel whenever the heap's top grows past its (dynamic, ~38 MiB) trim threshold, so with
    a few verifies at once every login faulted its 19 MiB in again (~2,000 page faults, +5 ms of
    CPU per login, bench "Logins"). Fixed thresholds keep `concurrent` blocks in the heap while
    the worker is busy; IdleTrimmer gives them back once it is idle."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: 19 MiB blocks from the heap, not mmap
        libc.mallopt(-1, concurrent * ARGON2_BLOCK_MB * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas (as MALLOC_ARENA_MAX would) before threads start.

    Each argon2id verify (m=19 MiB) on a new thread otherwise leaves its 19 MiB in an arena of
    its own: with 4 gunicorn threads, auth's worker grew to ~180 MB instead of ~100 MB (see
    bench/README.md). Inherited by gunicorn's forked workers. No-op where glibc is absent."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def run_web(service: str, config: Config, *, bind: str, workers: int) -> None:
    """Serve `services.<service>.app.create_app(config)` under gunicorn, in this process."""
    _check_service(service)
    _check_config(service, "web", config)
    # One arena: free()/malloc_trim give an argon2id verify's 19 MiB back from the main arena's top;
    # a second arena's top is only trimmed past glibc's (dynamic, ~38 MiB) threshold, so with two
    # arenas an idle auth worker kept 2 × 19 MiB (bench/README.md, "Memory").
    limit_malloc_arenas(1)
    if service == "auth":
        keep_hash_memory_while_busy(concurrent=WEB_THREADS)
    from gunicorn.app.base import BaseApplication

    # Metrics of every gunicorn worker, aggregated at scrape by the master (prometheus_client
    # multiprocess mode). Set before anything imports prometheus_client (its value class is chosen
    # at import, and the forked workers inherit it); one fresh directory per process.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import atexit
        import shutil
        import tempfile
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"balcao-{service}-metrics-")
        metrics_dir, master = os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid()

        def _remove_metrics_dir():  # forked gunicorn workers inherit atexit: only the master cleans
            if os.getpid() == master:
                shutil.rmtree(metrics_dir, ignore_errors=True)

        atexit.register(_remove_metrics_dir)

    from .metrics import metrics_bind
    options = gunicorn_options(service, bind=bind, workers=workers,
                               metrics_bind=metrics_bind(config, service, "web"))

    class BalcaoWebApplication(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):  # runs once, in the master (preload_app)
            from .runtime import service_module
            app = service_module(service, "app").create_app(config)
            compile_templates(app)
            if service == "documents" and config.documents_s3_endpoint:
                # the S3 client (botocore's, ~15 MB of its models, no connection yet) built once here and
                # shared by the workers, instead of once per worker at its first request
                from services.documents.vault import vault_from_config
                vault_from_config(config)
            return app

    _configure_logging(service, "web")
    log.info("serving %s on %s with %d worker(s)", service, bind, options["workers"])
    BalcaoWebApplication().run()


# --------------------------------------------------------------------------- worker

class _Supervised(threading.Thread):
    """A thread running `target.run()` that remembers how it ended."""

    def __init__(self, name: str, target):
        super().__init__(name=name, daemon=True)
        self.runner = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported and turned into an exit code
            self.error = exc
            log.exception("%s died", self.name)


def run_worker(service: str, config: Config) -> None:
    """Run the service's consumers, its outbox relay and its periodic jobs
    (`consumers.PERIODIC`) until SIGTERM/SIGINT. Its Prometheus metrics (messages, outbox and
    queue state) are served at BALCAO_METRICS_BIND (default: loopback, metrics.default_bind).

    A clean stop exits 0; a thread that ends on its own (it should never) makes the process
    exit 1 so that the supervisor (Compose, systemd, the process runner) restarts it.
    """
    _check_service(service)
    _check_config(service, "worker", config)
    limit_malloc_arenas()
    _configure_logging(service, "worker")
    from .runtime import consumer_worker, outbox_relay, periodic_jobs

    consumer = consumer_worker(service, config)
    relay = outbox_relay(service, config, poll_interval=0.2)
    jobs = periodic_jobs(service, config)
    _malloc_trim()  # what importing freed (auth's dummy argon2id hashes: 19 MiB) goes back to the kernel
    threads = [_Supervised(f"{service}-consumer", consumer), _Supervised(f"{service}-outbox-relay", relay),
               *[_Supervised(f"{service}-periodic-{job.name}", job) for job in jobs]]
    from . import metrics
    metrics_server = metrics.serve(metrics.metrics_bind(config, service, "worker"),
                                   metrics.registry_with_state([service], config), what=f"the {service} worker")

    stop_requested = threading.Event()
    received: list[int] = []

    def _on_signal(signum, _frame):
        received.append(signum)
        stop_requested.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for t in threads:
            t.start()
        log.info("worker for %s started (broker %s)", service, _redact(config.broker_url))
        announced = False
        failed: _Supervised | None = None
        while not stop_requested.wait(0.2):
            if not announced and consumer.ready.is_set():
                log.info("consuming %s queues; outbox relay running; periodic jobs: %s", service,
                         ", ".join(f"{j.name} every {j.interval:g}s" for j in jobs) or "none")
                announced = True
            dead = [t for t in threads if not t.is_alive()]
            if dead:
                failed = dead[0]
                break
        consumer.stop()
        relay.stop()
        for job in jobs:
            job.stop()
        for t in threads:
            t.join(STOP_TIMEOUT)
        still = [t.name for t in threads if t.is_alive()]
        if still:
            log.warning("threads did not stop within %.0fs: %s", STOP_TIMEOUT, ", ".join(still))
        if failed is not None:
            log.error("%s ended unexpectedly (%s); exiting so the supervisor restarts the worker",
                      failed.name, repr(failed.error) if failed.error else "returned")
            logging.shutdown()
            raise SystemExit(1)
        log.info("worker for %s stopped (signal %s)", service, received[0] if received else "?")
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _redact(url: str) -> str:
    """A broker URL without its password, for log lines."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
        if parts.password:
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable>"
    return url

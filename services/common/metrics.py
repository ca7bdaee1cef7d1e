"""Prometheus metrics of every service (prometheus_client), served on a port of their own.

Counters and histograms are module-level (labelled by service) and updated by the web layer
(HTTP requests) and the consumers (messages). Broker and database state — outbox lag and queue
depth — is computed when scraped (`ServiceStateCollector`).

Where they are served: never by the public apps (no /metrics route; the gateway routes nothing
to these ports). `BALCAO_METRICS_BIND` (host:port, "off" to serve none) is the address of a
small HTTP server; by default it listens on loopback only, at a port that depends on the process
so that every process of one host gets its own (`default_bind`):
  * the embedded mode (`balcao run`): 127.0.0.1:9464 — every service's counters and state;
  * `balcao web SERVICE` (gunicorn): the master serves the HTTP counters of all its workers,
    aggregated from PROMETHEUS_MULTIPROC_DIR (prometheus_client multiprocess mode), which
    `run_web` sets before any worker starts; 127.0.0.1:9464 + 2 × the service's index;
  * `balcao worker SERVICE`: the message counters plus the outbox and queue state;
    the web's port + 1.

Metric names:
  balcao_http_requests_total{service,method,endpoint,status}
  balcao_http_request_duration_seconds{service,method,endpoint}      (histogram)
  balcao_messages_consumed_total{service,queue,outcome}               (handled / duplicate)
  balcao_messages_failed_total{service,queue}                         (handler raised; retried)
  balcao_messages_dead_lettered_total{service,queue}
  balcao_outbox_unpublished{service}, balcao_outbox_lag_seconds{service}   (at scrape)
  balcao_queue_depth{queue}, balcao_broker_up{service}                     (at scrape)
"""
from __future__ import annotations

import logging
import os
import time
from datetime import UTC

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("balcao.metrics")

HTTP_REQUESTS = Counter("balcao_http_requests", "HTTP requests answered",
                        ["service", "method", "endpoint", "status"])
HTTP_LATENCY = Histogram("balcao_http_request_duration_seconds", "HTTP request latency",
                         ["service", "method", "endpoint"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
MESSAGES_CONSUMED = Counter("balcao_messages_consumed", "Messages consumed and acknowledged",
                            ["service", "queue", "outcome"])
MESSAGES_FAILED = Counter("balcao_messages_failed", "Handler failures (the message is retried)",
                          ["service", "queue"])
MESSAGES_DEAD_LETTERED = Counter("balcao_messages_dead_lettered", "Messages sent to the dead-letter queue",
                                 ["service", "queue"])

CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_registry():
    if multiprocess_dir():
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


class ServiceStateCollector:
    """Outbox lag and queue depth of one service, read when scraped."""

    def __init__(self, service: str, config):
        self.service, self.config = service, config

    def collect(self):
        from .messaging import queue_depths
        from .runtime import database, service_module
        unpublished = GaugeMetricFamily("balcao_outbox_unpublished", "Outbox rows not yet published",
                                        labels=["service"])
        lag = GaugeMetricFamily("balcao_outbox_lag_seconds", "Age of the oldest unpublished outbox row",
                                labels=["service"])
        try:
            count, age = outbox_lag(database(self.service, self.config),
                                    service_module(self.service, "models").outbox)
            unpublished.add_metric([self.service], count)
            lag.add_metric([self.service], age)
            yield unpublished
            yield lag
        except Exception as exc:  # the database is down: no value rather than a wrong one
            log.warning("outbox metrics of %s unavailable: %s", self.service, exc)
        depth = GaugeMetricFamily("balcao_queue_depth", "Messages ready in the queue", labels=["queue"])
        up = GaugeMetricFamily("balcao_broker_up", "1 if the broker answered the scrape", labels=["service"])
        try:
            for name, count in queue_depths(self.config.broker_url, self.service).items():
                depth.add_metric([name], count)
            up.add_metric([self.service], 1)
            yield depth
        except Exception as exc:
            log.warning("queue depth of %s unavailable: %s", self.service, exc)
            up.add_metric([self.service], 0)
        yield up


def outbox_lag(db, outbox) -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest one — 0 when none)."""
    from sqlalchemy import func, select

    from .messaging import utcnow
    with db.begin() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite gives naive UTC datetimes back
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (utcnow() - oldest).total_seconds())


def render(services, config) -> bytes:
    """The text exposition of this process (or every gunicorn worker) plus the state at scrape."""
    return generate_latest(registry_with_state(services, config))


def registry_with_state(services, config) -> CollectorRegistry:
    """This process's metrics (every gunicorn worker's in multiprocess mode) and the outbox and
    queue state of `services`, read when scraped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Union(process_registry(), *[ServiceStateCollector(svc, config) for svc in services]))
    return registry


def observe_request(service: str, method: str, endpoint: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(service, method, endpoint, str(status)).inc()
    HTTP_LATENCY.labels(service, method, endpoint).observe(seconds)


METRICS_BASE_PORT = 9464


def default_bind(service: str | None, role: str) -> str:
    """Loopback, one port per process of a host: the embedded mode 9464; `balcao web SERVICE`
    9464 + 2 × index (auth 9464, users 9466, invitations 9468, notifier 9470); its worker + 1."""
    if service is None:
        return f"127.0.0.1:{METRICS_BASE_PORT}"
    from .config import SERVICES
    return f"127.0.0.1:{METRICS_BASE_PORT + 2 * SERVICES.index(service) + (1 if role == 'worker' else 0)}"


def metrics_bind(config, service: str | None, role: str) -> str:
    """The metrics address of this process: BALCAO_METRICS_BIND, else `default_bind`. A value
    that is not an address stops the process at start, with the reason."""
    bind = config.metrics_bind or default_bind(service, role)
    try:
        parse_bind(bind)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return bind


def parse_bind(value: str) -> tuple[str, int] | None:
    """"host:port", "[v6]:port" or a bare port (loopback) → (host, port); "off" → None."""
    value = value.strip()
    if value.lower() in ("off", "none", "no", "false"):
        return None
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"BALCAO_METRICS_BIND must be host:port or off, not {value!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"BALCAO_METRICS_BIND port out of range: {value!r}")
    return host, number


class MetricsServer:
    """prometheus_client's HTTP server (a daemon thread) on `host:port`; any path answers."""

    def __init__(self, host: str, port: int, registry):
        from prometheus_client import start_http_server
        self.httpd, self.thread = start_http_server(port, addr=host, registry=registry)
        self.host, self.port = host, self.httpd.server_address[1]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(bind: str | None, registry, *, what: str) -> MetricsServer | None:
    """Start the metrics server at `bind` (None/"off": none). A port that cannot be bound is
    logged, never fatal: the service itself keeps running."""
    address = parse_bind(bind) if bind else None
    if address is None:
        log.info("metrics of %s not served (BALCAO_METRICS_BIND=off)", what)
        return None
    try:
        server = MetricsServer(address[0], address[1], registry)
    except OSError as exc:
        log.error("metrics of %s NOT served: cannot listen on %s:%s (%s); set BALCAO_METRICS_BIND",
                  what, address[0], address[1], exc)
        return None
    log.info("metrics of %s on http://%s:%s/metrics", what, server.host, server.port)
    return server


class _Union:
    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def now() -> float:
    return time.perf_counter()

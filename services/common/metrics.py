"""Prometheus metrics of every service (prometheus_client).

Counters and histograms are module-level (labelled by service) and updated by the web layer
(HTTP requests) and the consumers (messages). Broker and database state — outbox lag and queue
depth — is computed when scraped (`state_collector`). Under gunicorn with several workers
`run_web` sets PROMETHEUS_MULTIPROC_DIR before any worker imports this module, and `render()`
then aggregates every worker's files (prometheus_client multiprocess mode).

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


def _process_registry():
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


def render(service: str, config) -> bytes:
    """The text exposition of this process (or every gunicorn worker) plus the state at scrape."""
    state = CollectorRegistry(auto_describe=False)
    state.register(ServiceStateCollector(service, config))
    return generate_latest(_process_registry()) + generate_latest(state)


def observe_request(service: str, method: str, endpoint: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(service, method, endpoint, str(status)).inc()
    HTTP_LATENCY.labels(service, method, endpoint).observe(seconds)


def start_worker_server(service: str, config, port: int):
    """Serve the worker's metrics on 0.0.0.0:`port` (BALCAO_METRICS_PORT) in a daemon thread."""
    from prometheus_client import start_http_server
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Union(_process_registry(), ServiceStateCollector(service, config)))
    return start_http_server(port, registry=registry)


class _Union:
    def __init__(self, registry, collector):
        self.registry, self.collector = registry, collector

    def collect(self):
        yield from self.registry.collect()
        yield from self.collector.collect()


def now() -> float:
    return time.perf_counter()

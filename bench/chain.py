"""Issue 11, targets 1–3: the invitation chain (activation → users → invitations → notifier → SMTP)
against floors measured in the same run, on a stack of its own (see bench/README.md, "The
invitation chain").

* `chain_one`: 20 sequential activations on a quiet stack, activation commit → e-mail accepted by
  the SMTP server; p50 against its floor (three raw kombu publish → consume round trips, the
  chain's PostgreSQL commits timed alone, one raw smtplib send), with the hops (from the workers'
  JSON logs, by correlation id) beside it.
* `chain_burst`: 1,000 activations through an import; e-mail arrival rate against what the same
  aiosmtpd server accepts from a plain smtplib loop over one connection; p99 activation → e-mail.
* `chain_scaling`: an SMTP server taking 50 ms per message; e-mails per second drained from the
  notifier's queue with 1, 2 and 4 notifier worker processes; one Message-ID per person.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import shutil
import smtplib
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from .load import LoadMonitor
from .stats import BUDGETS, Row, fmt, load_note, load_verdict, percentile, summarize

FIGURES = ("chain_one", "chain_burst", "chain_scaling")
FULL = dict(one=20, burst=1000, raw_smtp=1000, scaling=(1, 2, 4), scaling_messages=400, smtp_delay=0.05,
            kombu_round_trips=30, commit_reps=30)
QUICK = dict(one=8, burst=200, raw_smtp=300, scaling=(1, 2, 4), scaling_messages=120, smtp_delay=0.05,
             kombu_round_trips=10, commit_reps=10)
# Commits of the chain between the activation's own and the e-mail's acceptance, each on its
# service's database: users relay marks published; invitations consumer; invitations relay marks
# published; notifier claims the attempt (its outcome, its relay and users' projection come after
# the e-mail left).
CHAIN_COMMITS = 4


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] chain: {msg}", flush=True)


# --------------------------------------------------------------------------- the SMTP server


class SmtpSink:
    """An aiosmtpd server recording, per recipient, the wall-clock arrival of each message and its
    Message-ID; `delay` seconds of (asynchronous) work per message, as a real relay takes."""

    def __init__(self, delay: float = 0.0):
        from aiosmtpd.controller import Controller

        from deploy.stack import free_port
        self.delay = delay
        self.arrivals: dict[str, float] = {}
        self.message_ids: dict[str, list[str]] = {}
        self.sessions: set[int] = set()
        self.gate = threading.Event()  # cleared: every DATA waits until it is set again
        self.gate.set()
        self._cond = threading.Condition()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        if self.delay:
            await asyncio.sleep(self.delay)
        now = time.time()
        mid = ""
        for line in envelope.content.split(b"\r\n"):
            if not line:
                break
            if line.lower().startswith(b"message-id:"):
                mid = line.split(b":", 1)[1].strip().decode("ascii", "replace")
        with self._cond:
            self.sessions.add(id(session))
            for rcpt in envelope.rcpt_tos:
                rcpt = rcpt.lower()
                self.arrivals.setdefault(rcpt, now)
                self.message_ids.setdefault(rcpt, []).append(mid)
            self._cond.notify_all()
        return "250 OK"

    def wait(self, emails, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(e in self.arrivals for e in emails) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, min(1.0, deadline - time.monotonic())))
            return all(e in self.arrivals for e in emails)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def _raw_message(i: int, prefix: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "floor@bench.example"
    m["To"] = f"{prefix}{i}@floor.example"
    m["Subject"] = "Convite para o Portal do Cliente"
    m["Message-ID"] = f"<{prefix}{i}.{uuid.uuid4().hex}@bench.example>"
    m.set_content("Olá,\n\nvocê foi convidado.\n" * 20)
    return m


def raw_smtp_loop(sink: SmtpSink, count: int) -> float:
    """Messages per second a plain smtplib loop sends over one connection to `sink`."""
    messages = [_raw_message(i, "loop") for i in range(count)]
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as client:
        for m in messages:
            client.send_message(m)
    return count / (time.perf_counter() - t0)


def raw_smtp_send_once(sink: SmtpSink, reps: int) -> list[float]:
    """Seconds of one raw smtplib send (connect, EHLO, MAIL/RCPT/DATA, QUIT), `reps` times."""
    out = []
    for i in range(reps):
        m = _raw_message(i, "once")
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as client:
            client.send_message(m)
        out.append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------- broker and database floors


def kombu_round_trips(broker_url: str, reps: int, *, quorum: bool = True) -> list[float]:
    """Seconds of one persistent message published (publisher confirm) to a durable queue and
    consumed (manual ack) on the same broker, `reps` times, one at a time. The queue is a quorum
    queue, as every queue of the product is since issue 12 (services/common/messaging.py
    `declare_queue`): the broker's replication and log write are part of each hop's floor, not of
    our code; `quorum=False`: a classic queue."""
    from kombu import Connection, Exchange, Queue
    name = "balcao.bench.rt." + uuid.uuid4().hex[:8]
    exchange = Exchange(name, type="direct", durable=True)
    q = Queue(name, exchange, routing_key=name, durable=True,
              queue_arguments={"x-queue-type": "quorum"} if quorum and not broker_url.startswith("memory") else None)
    out: list[float] = []
    got = threading.Event()
    with Connection(broker_url, transport_options={"confirm_publish": True}) as pub, Connection(broker_url) as sub:
        with sub.channel() as ch:
            q(ch).declare()
        producer = pub.Producer()

        def on_message(body, message):
            message.ack()
            got.set()

        with sub.Consumer(q, callbacks=[on_message], prefetch_count=10):
            for i in range(reps + 3):
                got.clear()
                t0 = time.perf_counter()
                producer.publish({"i": i}, exchange=exchange, routing_key=name, delivery_mode=2)
                while not got.is_set():
                    sub.drain_events(timeout=10)
                if i >= 3:  # the first ones warm the connections
                    out.append(time.perf_counter() - t0)
        with sub.channel() as ch:
            q(ch).delete()
            exchange(ch).delete()
    return out


def commit_times(url: str, reps: int) -> list[float]:
    """Seconds of one small INSERT + COMMIT (synchronous) on the database at `url`, `reps` times."""
    import psycopg
    from sqlalchemy.engine import make_url
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    out = []
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TEMP TABLE bench_commit (id uuid primary key, at timestamptz)")
        conn.commit()
        for _ in range(reps + 3):
            t0 = time.perf_counter()
            conn.execute("INSERT INTO bench_commit VALUES (%s, now())", (uuid.uuid4(),))
            conn.commit()
            out.append(time.perf_counter() - t0)
    return out[3:]


# --------------------------------------------------------------------------- the hops, from the logs


HOP_LINES = (  # (hop name, service log, message prefix): the first line of each, per correlation id
    ("users relay published", "users-worker", "published client_user.access_activated"),
    ("invitations consumed + committed", "invitations-worker", "handled client_user.access_activated"),
    ("invitations relay published", "invitations-worker", "published notification.email_requested"),
    ("notifier: SMTP accepted", "notifier-worker", "e-mail "),
    ("notifier consumed + committed", "notifier-worker", "handled notification.email_requested"),
)


def _hop_lines(logs_dir: Path, hops=HOP_LINES):
    """(hop, correlation id, wall-clock time) of every hop line (`hops`: (hop, service log, message
    prefix)) in the stack's worker logs."""
    for path in sorted(logs_dir.glob("*-worker*.log")):
        service_log = path.stem.split("-worker")[0] + "-worker"
        for raw in path.read_text(errors="replace").splitlines():
            if not raw.startswith("{"):
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            for hop, svc_log, prefix in hops:
                if svc_log == service_log and line.get("message", "").startswith(prefix):
                    yield hop, line.get("correlation_id"), datetime.fromisoformat(line["timestamp"]).timestamp()


def hop_spans(logs_dir: Path, since: float) -> dict:
    """Per hop, how many log lines and when the first and the last came (s after `since`, wall
    clock): where a burst queues up."""
    out: dict[str, list[float]] = {hop: [] for hop, _, _ in HOP_LINES}
    for hop, _cid, at in _hop_lines(logs_dir):
        if at >= since:
            out[hop].append(at - since)
    return {hop: {"n": len(v), "first_s": min(v, default=math.nan), "last_s": max(v, default=math.nan)}
            for hop, v in out.items()}


def hop_times(logs_dir: Path, started: dict[str, float], hops=HOP_LINES) -> dict:
    """Per hop, the milliseconds since the activation's commit (p50 over the correlation ids of
    `started` = {correlation id: wall-clock commit time})."""
    seen: dict[str, dict[str, float]] = {cid: {} for cid in started}
    for hop, cid, at in _hop_lines(logs_dir, hops):
        if cid in seen and hop not in seen[cid]:
            seen[cid][hop] = at
    out = {}
    for hop, _, _ in hops:
        values = [(seen[cid][hop] - started[cid]) * 1000 for cid in started if hop in seen[cid]]
        out[hop] = {"p50_ms": percentile(values, 50), "n": len(values)}
    return out


# --------------------------------------------------------------------------- the stack


@contextlib.contextmanager
def chain_stack(*, server_url: str, broker_url: str, smtp: SmtpSink, notifier_workers: int = 1, tag: str):
    """Databases, a private vhost, migrations and the distributed stack, all of the run's own;
    yields (stack, config, broker_url, database urls)."""
    from deploy.stack import Stack, free_port
    from services.common.config import SERVICES
    from services.common.runtime import migrate
    from testsupport import make_test_config

    from .runner import drop_databases, fresh_databases, private_broker
    workdir = Path(tempfile.mkdtemp(prefix="balcao-bench-chain-"))
    urls = fresh_databases(server_url, tag)
    stack = None
    try:
        with private_broker(broker_url) as vhost_url:
            port = free_port()
            config = make_test_config(workdir / "var", urls, broker_url=vhost_url,
                                      public_url=f"http://127.0.0.1:{port}", smtp_url=smtp.url)
            from services.users import pii
            pii.configure(config)
            for svc in SERVICES:
                migrate(svc, config)
            env = {"BALCAO_BROKER_URL": vhost_url, "BALCAO_VAR_DIR": str(config.var_dir),
                   "BALCAO_KEYS_DIR": str(config.keys_dir), "BALCAO_DEMO": "0", "BALCAO_SMTP_URL": smtp.url,
                   **{f"BALCAO_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()}}
            stack = Stack(env=env, gateway_port=port, workdir=workdir / "stack", web_workers=1,
                          worker_processes={"notifier": notifier_workers})
            stack.start(timeout=180)
            try:
                yield stack, config, vhost_url, urls
            finally:
                stack.stop()
    finally:
        try:
            drop_databases(server_url, urls)
        except Exception as exc:  # never lose the figures for the clean-up
            log(f"could not drop the databases: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)


def _firm(config):
    from . import seed
    admin_email = f"admin.{uuid.uuid4().hex[:6]}@bench.example"
    admin_id = seed.register_identity(config, email=admin_email, name="Admin Cadeia", password="Bench-Senha-Longa-2026")
    return seed.create_firm(config, n=3, name="Contabilidade Cadeia", admin_identity_id=admin_id,
                            admin_email=admin_email), admin_id


def activate(config, *, firm_id, name: str, email: str, correlation_id: str) -> float:
    """[Ativar] + [Envie agora] for one new client user in its own transaction, with the chain's
    correlation id; returns the wall-clock time right after the commit."""
    from services.common.messaging import correlation_id_var
    from services.common.runtime import database
    from services.users import models as um
    from services.users import services as users_services
    token = correlation_id_var.set(correlation_id)
    try:
        with database("users", config).begin() as session:
            firm = session.get(um.Firm, firm_id)
            users_services.register_client_user(session, firm=firm, name=name, email=email, access="now")
    finally:
        correlation_id_var.reset(token)
    return time.time()


def import_people(config, *, firm_id, admin_id, people: list[tuple[str, str]]) -> None:
    """An import of `people` ([Importar] of a CSV), confirmed: the users worker's periodic job
    creates them (each its own transaction with its event, access "now")."""
    from services.common.runtime import database
    from services.users import models as um
    from services.users import services as users_services
    from services.users.imports import read_rows
    from testsupport.helpers import csv_bytes
    table = [["Nome", "CPF", "Telefone", "E-mail", "Empresas"], *[[n, "", "", e, ""] for n, e in people]]
    with database("users", config).begin() as session:
        firm = session.get(um.Firm, firm_id)
        rows = read_rows("convidados.csv", io.BytesIO(csv_bytes(table)))
        job = users_services.create_import_job(session, firm=firm, identity_id=admin_id, filename="convidados.csv",
                                               rows=rows)
        users_services.start_import_job(session, firm=firm, job=job)


def activation_times(config, emails: set[str]) -> dict[str, float]:
    """{e-mail: wall-clock time of the client_user.access_activated event's commit} (its outbox row's
    created_at, written just before that commit)."""
    from sqlalchemy import select

    from services.common.runtime import database
    from services.users.models import outbox
    out = {}
    with database("users", config).begin() as session:
        for envelope, created in session.execute(select(outbox.c.envelope, outbox.c.created_at)
                                                 .where(outbox.c.type == "client_user.access_activated")):
            email = (envelope.get("payload") or {}).get("email", "").lower()
            if email in emails:
                out[email] = created.timestamp()
    return out


def _notifier_message_ids(config) -> dict[str, set[str]]:
    from sqlalchemy import select

    from services.common.runtime import database
    from services.notifier.models import Delivery
    out: dict[str, set[str]] = {}
    with database("notifier", config).begin() as session:
        for rcpt, mid in session.execute(select(Delivery.recipient, Delivery.message_id)):
            out.setdefault(rcpt.lower(), set()).add(mid)
    return out


def _queue_state(broker_url: str, name: str) -> tuple[int, int]:
    """(messages ready, consumers) of a queue; (-1, -1) while the broker does not answer (the
    machine's RabbitMQ is shared: another run may be restarting it)."""
    from services.common.messaging import broker_connection
    try:
        with broker_connection(broker_url) as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            with conn.channel() as channel:
                _, ready, consumers = channel.queue_declare(queue=name, passive=True)
                return int(ready), int(consumers)
    except Exception as exc:  # noqa: BLE001 - reported, and the caller polls again
        log(f"queue {name}: {type(exc).__name__}: {exc}")
        time.sleep(1)
        return -1, -1


# --------------------------------------------------------------------------- the figures


def figure_one(stack, config, broker_url, urls, smtp: SmtpSink, firm_id, p) -> dict:
    """Sequential activations, each waited for at the SMTP server before the next."""
    started: dict[str, float] = {}
    latencies = []
    for i in range(p["one"] + 2):
        email = f"sequencial{i}.{uuid.uuid4().hex[:4]}@bench.example"
        cid = f"chain-one-{i}-{uuid.uuid4().hex[:8]}"
        t = activate(config, firm_id=firm_id, name=f"Pessoa Sequencial {i}", email=email, correlation_id=cid)
        if not smtp.wait([email], timeout=60):
            raise RuntimeError(f"the invitation e-mail to {email} did not arrive within 60 s")
        if i >= 2:  # the first two warm the connections and caches of every process
            latencies.append(smtp.arrivals[email] - t)
            started[cid] = t
        time.sleep(0.2)
    commits = [commit_times(urls[svc], p["commit_reps"]) for svc in ("users", "invitations", "notifier")]
    commit_p50 = percentile([c for cs in commits for c in cs], 50)
    rt = kombu_round_trips(broker_url, p["kombu_round_trips"])
    smtp_once = raw_smtp_send_once(smtp, 10)
    floor = 3 * percentile(rt, 50) + CHAIN_COMMITS * commit_p50 + percentile(smtp_once, 50)
    p50 = percentile(latencies, 50)
    return {"n": len(latencies), "latency_ms": summarize([x * 1000 for x in latencies]),
            "floor_ms": floor * 1000, "floor_ratio": p50 / floor,
            "floor_parts_ms": {"kombu_round_trip_p50": percentile(rt, 50) * 1000,
                               "commit_p50": commit_p50 * 1000, "commits": CHAIN_COMMITS,
                               "smtp_send_p50": percentile(smtp_once, 50) * 1000},
            "hops_ms": hop_times(stack.logs_dir, started)}


def cpu_seconds(stack) -> dict[str, float]:
    """CPU time (user + system) so far of each worker process of the stack."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, proc in stack.processes.items():
        if "-worker" not in name:
            continue
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def figure_burst(stack, config, smtp: SmtpSink, firm_id, admin_id, p) -> dict:
    n = p["burst"]
    cpu_before = cpu_seconds(stack)
    tag = uuid.uuid4().hex[:4]
    people = [(f"Pessoa Importada {i}", f"importada{i}.{tag}@bench.example") for i in range(n)]
    emails = [e for _, e in people]
    import_people(config, firm_id=firm_id, admin_id=admin_id, people=people)
    complete = smtp.wait(emails, timeout=max(120, n * 0.5))
    arrived = sorted(smtp.arrivals[e] for e in emails if e in smtp.arrivals)
    activated = activation_times(config, set(emails))
    latencies = [smtp.arrivals[e] - activated[e] for e in emails if e in smtp.arrivals and e in activated]
    first_activation = min(activated.values()) if activated else math.nan
    cpu_after = cpu_seconds(stack)
    cpu_ms = {name: (cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / max(1, len(arrived))
              for name in cpu_after}
    raw_rate = raw_smtp_loop(smtp, p["raw_smtp"])
    rate = len(arrived) / (arrived[-1] - first_activation) if arrived else 0.0
    return {"activated": len(activated), "delivered": len(arrived), "complete": complete,
            "per_s": rate, "raw_smtp_per_s": raw_rate, "rate_ratio": rate / raw_rate,
            "latency_s": summarize(latencies),
            "import_span_s": (max(activated.values()) - first_activation) if activated else math.nan,
            "smtp_connections": None, "hops": hop_spans(stack.logs_dir, first_activation),
            "worker_cpu_ms_per_email": cpu_ms}


def figure_scaling(*, server_url, broker_url, p) -> dict:
    """For each number n of notifier worker processes: the notifier's queue is filled while its
    workers are stopped; n workers start while the SMTP server holds every DATA back, and once the
    n are consuming it lets them through: rate = e-mails / (last arrival − that moment)."""
    out: dict = {"smtp_delay_ms": p["smtp_delay"] * 1000, "by_workers": {}}
    most = max(p["scaling"])
    with SmtpSink(delay=p["smtp_delay"]) as smtp, chain_stack(
            server_url=server_url, broker_url=broker_url, smtp=smtp, notifier_workers=most,
            tag="bench_chs_" + uuid.uuid4().hex[:6]) as (stack, config, vhost_url, urls):
        firm, admin_id = _firm(config)
        names = ["notifier-worker"] + [f"notifier-worker-{k}" for k in range(2, most + 1)]
        from services.common import events
        queue = events.queue_name("notifier", "notification.email_requested")
        for n in p["scaling"]:
            for name in names:
                proc = stack.processes[name]
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)
            tag = uuid.uuid4().hex[:4]
            people = [(f"Pessoa Escala {n}-{i}", f"escala{n}-{i}.{tag}@bench.example")
                      for i in range(p["scaling_messages"])]
            emails = [e for _, e in people]
            import_people(config, firm_id=firm["id"], admin_id=admin_id, people=people)
            deadline = time.monotonic() + 600
            while _queue_state(vhost_url, queue)[0] < len(people) and time.monotonic() < deadline:
                time.sleep(0.5)
            smtp.gate.clear()
            for name in names[:n]:
                stack.restart(name)
            while _queue_state(vhost_url, queue)[1] < n and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # each has its first e-mail at the server's door
            opened = time.time()
            smtp.gate.set()
            complete = smtp.wait(emails, timeout=600)
            arrived = sorted(smtp.arrivals[e] for e in emails if e in smtp.arrivals)
            rate = len(arrived) / (arrived[-1] - opened) if arrived else 0.0
            out["by_workers"][str(n)] = {"per_s": rate, "delivered": len(arrived), "complete": complete}
            log(f"{n} notifier worker(s): {rate:.1f} e-mails/s ({len(arrived)}/{len(people)})")
        ids = _notifier_message_ids(config)
        sent = {rcpt: mids for rcpt, mids in smtp.message_ids.items() if rcpt.startswith("escala")}
        out["one_message_id_per_person"] = all(len(set(mids)) == 1 and ids.get(rcpt) == set(mids)
                                               for rcpt, mids in sent.items()) and bool(sent)
        out["duplicates_at_smtp"] = sum(len(m) - 1 for m in sent.values())
    one = out["by_workers"].get("1", {}).get("per_s") or math.nan
    for n in ("2", "4"):
        if n in out["by_workers"]:
            out[f"ratio_{n}"] = out["by_workers"][n]["per_s"] / one
    return out


def run(*, quick: bool = False, only=FIGURES, server_url: str | None = None, broker_url: str | None = None) -> dict:
    """The chain's figures of `only`, each stack of the run's own (`chain_scaling` starts one with
    four notifier workers and a slow SMTP server). Returns {"chain": {...}}."""
    from .runner import DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL
    p = QUICK if quick else FULL
    server_url = server_url or os.environ.get("BALCAO_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    broker_url = broker_url or os.environ.get("BALCAO_BENCH_BROKER_URL", DEFAULT_BROKER_URL)
    results: dict = {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()},
                     "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]}
    if {"chain_one", "chain_burst"} & set(only):
        tag = "bench_ch_" + uuid.uuid4().hex[:6]
        with SmtpSink() as smtp, chain_stack(server_url=server_url, broker_url=broker_url, smtp=smtp,
                                             tag=tag) as (stack, config, vhost, urls):
            firm, admin_id = _firm(config)
            if "chain_one" in only:
                log(f"{p['one']} sequential activations → e-mail")
                with LoadMonitor(f"balcao_{tag}_") as monitor:
                    results["one"] = figure_one(stack, config, vhost, urls, smtp, firm["id"], p)
                results["one"]["load"] = monitor.result()
            if "chain_burst" in only:
                log(f"a burst of {p['burst']} activations through an import")
                with LoadMonitor(f"balcao_{tag}_") as monitor:
                    results["burst"] = figure_burst(stack, config, smtp, firm["id"], admin_id, p)
                results["burst"]["smtp_connections"] = len(smtp.sessions)
                results["burst"]["load"] = monitor.result()
    if "chain_scaling" in only:
        log(f"notifier workers {p['scaling']} against an SMTP server taking {p['smtp_delay'] * 1000:.0f} ms")
        try:
            with LoadMonitor("balcao_bench_chs_") as monitor:
                results["scaling"] = figure_scaling(server_url=server_url, broker_url=broker_url, p=p)
            results["scaling"]["load"] = monitor.result()
        except Exception as exc:  # the figures already measured stay in the results
            log(f"the scaling figure failed: {type(exc).__name__}: {exc}")
            results["scaling_error"] = f"{type(exc).__name__}: {exc}"
    results["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return {"chain": results}


def rows_of(results: dict) -> list[Row]:
    c = results.get("chain") or {}
    rows = []
    one = c.get("one")
    if one:
        f = one["floor_parts_ms"]
        rows.append(Row(f"one invitation, activation commit → SMTP accepted ms ({one['n']} sequential)",
                        f"p50 {fmt(one['latency_ms']['median'])}, p99 {fmt(one['latency_ms']['p99'])} "
                        f"(floor {fmt(one['floor_ms'])}: 3 × kombu {fmt(f['kombu_round_trip_p50'])} + "
                        f"{f['commits']} × commit {fmt(f['commit_p50'])} + smtplib {fmt(f['smtp_send_p50'])})"))
        rows.append(Row("  one invitation p50 / floor", f"{fmt(one['floor_ratio'], 2)}; {load_note(one.get('load'))}",
                        "<= 3", load_verdict("chain_one_floor_ratio", one["floor_ratio"], one.get("load"))))
        rows.append(Row("  hops p50 ms since the commit", "; ".join(
            f"{hop} {fmt(v['p50_ms'], 0)}" for hop, v in one["hops_ms"].items())))
    b = c.get("burst")
    if b:
        rows.append(Row(f"burst of {b['activated']} activations (import): e-mails /s "
                        f"({b['delivered']} delivered, {b['smtp_connections']} SMTP connections)",
                        f"{fmt(b['per_s'])} (raw smtplib over one connection {fmt(b['raw_smtp_per_s'], 0)})"))
        rows.append(Row("  burst hops: n, last (s after the first activation)", "; ".join(
            f"{hop} {v['n']} by {fmt(v['last_s'], 1)}" for hop, v in b.get("hops", {}).items())))
        cpu = b.get("worker_cpu_ms_per_email") or {}
        if cpu:
            rows.append(Row("  burst: worker CPU ms per e-mail (users, invitations, notifier, ...)", "; ".join(
                f"{name.replace('-worker', '')} {fmt(v, 1)}" for name, v in sorted(cpu.items()) if v >= 0.05)
                + f"; total {fmt(sum(cpu.values()), 1)}"))
        rows.append(Row("  burst rate / raw smtplib rate", f"{fmt(b['rate_ratio'], 2)}; {load_note(b.get('load'))}",
                        ">= 0.50", load_verdict("chain_burst_rate_ratio", b["rate_ratio"], b.get("load"))))
        rows.append(Row("  burst latency s (activation commit → e-mail)",
                        f"p50 {fmt(b['latency_s']['median'], 2)}, p99 {fmt(b['latency_s']['p99'], 2)}", "p99 <= 10",
                        load_verdict("chain_burst_p99_s", b["latency_s"]["p99"], b.get("load"))))
    s = c.get("scaling")
    if s:
        by = s["by_workers"]
        rows.append(Row(f"notifier workers 1/2/4, SMTP {fmt(s['smtp_delay_ms'], 0)} ms/message: e-mails /s",
                        " / ".join(fmt(by[k]["per_s"]) for k in by)
                        + f"; one Message-ID per person: {s['one_message_id_per_person']}; {load_note(s.get('load'))}"))
        for n, budget in (("2", "chain_scaling_2"), ("4", "chain_scaling_4")):
            if f"ratio_{n}" in s:
                rows.append(Row(f"  {n} workers / 1 worker", fmt(s[f"ratio_{n}"], 2),
                                f">= {BUDGETS[budget][1]}", load_verdict(budget, s[f"ratio_{n}"], s.get("load"))))
    return rows


def main(argv=None) -> int:
    import argparse

    from .stats import render_table
    parser = argparse.ArgumentParser(prog="python -m bench.chain", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", type=lambda v: [f.strip() for f in v.split(",") if f.strip()], default=list(FIGURES))
    args = parser.parse_args(argv)
    results = run(quick=args.quick, only=args.only)
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(render_table(rows_of(results), title=f"Balcão invitation chain {results['date']}"))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "chain-latest.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

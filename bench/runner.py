"""`python -m bench`: Balcão's benchmark suite against the distributed mode (deploy/stack.py:
every service under gunicorn + a worker process, nginx in front) on the machine's RabbitMQ and
PostgreSQL. See bench/README.md."""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from . import chain, documents, seed
from .load import LoadMonitor, loadavg
from .load import merge as merge_loads
from .stats import Row, fmt, load_note, load_verdict, median_of_runs, ms, percentile, render_table, summarize, verdict
from .stats import machine_busy as stats_busy

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
PASSWORD = "Bench-Senha-Longa-2026"

# The big firm grows the way a firm does, by taking on companies: `users_per_company` client users
# each, so at 1k / 10k / 100k client users it has 50 / 500 / 5,000 companies (the Empresas list's
# sizes); its Colaborador's carteira is `carteira` companies (= 1,000 client users) at every size.
# Issue 10 (documents): the client home at 100 and 10,000 documents in the firm (1/20 in the person's
# companies: 5 and 500), the staff folder listing at 1,000 and 100,000, a 50 MB download, 1 MB uploads in
# rounds against raw S3 PUTs, Distribuir automaticamente on 300 guias against pypdf alone.
DOCUMENTS_FULL = dict(doc_home_sizes=(100, 10_000), doc_person_share=20, doc_folder_sizes=(1_000, 100_000),
                      doc_reps=100, download_mb=50, download_reps=3, upload_files=20, upload_rounds=3, guias=300,
                      distribute_rounds=3)
DOCUMENTS_QUICK = dict(doc_home_sizes=(100, 10_000), doc_person_share=20, doc_folder_sizes=(1_000, 10_000),
                       doc_reps=10, download_mb=50, download_reps=1, upload_files=6, upload_rounds=2, guias=60,
                       distribute_rounds=2)
# Issue 11: every latency figure is measured RUNS times and reported as the median of the runs
# (list_reps is per run).
RUNS = 3
FULL = dict(sizes=(1_000, 10_000, 100_000), firms=1_000, users_per_other_firm=10, users_per_company=20,
            carteira=50, login_rounds=10, login_seconds=3.0, login_threads=4,
            links=100, link_threads=4, link_seq=20, floor_reps=20, list_reps=35, home_reps=70, warmup=10, invitations=100,
            kombu_messages=5000, **DOCUMENTS_FULL)
QUICK = dict(sizes=(1_000, 10_000), firms=100, users_per_other_firm=5, users_per_company=20, carteira=50,
             login_rounds=3, login_seconds=1.5, login_threads=4,
             links=12, link_threads=4, link_seq=4, floor_reps=8, list_reps=4, home_reps=10, warmup=3, invitations=12, kombu_messages=500,
             **DOCUMENTS_QUICK)
# What `--only` may name (default: all of them).
USERS_FIGURES = ("logins", "links", "link_floor", "invitations", "client_home", "list", "colaborador_list", "empresas",
                 "staff_home", "memory")
FIGURES = USERS_FIGURES + documents.FIGURES + chain.FIGURES
# The figures of the users service's big firm (section 3 of `run`): its growth to 100,000 client users.
LIST_FIGURES = {"list", "colaborador_list", "empresas", "staff_home"}
# One request for a static file through the gateway: part of every page's floor (see page_vs_floor).
STATIC_PATH = "/_common/balcao.css"
# What a staff member does on the list: first page, paging, search by a common surname, by an
# e-mail domain fragment, and a search nobody matches (every row of the firm examined).
LIST_KINDS = {"page 1": {}, "page 20": {"pagina": "20"}, "search name": {"q": "silva"},
              "search e-mail": {"q": "@cliente7.example"}, "search no match": {"q": "xyzw"}}


def _formatted_cnpj(digits: str) -> str:
    return f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"


# Configurações › Empresas as an Administrador: the first page, a common surname in the razão
# social, a whole CNPJ as typed (with punctuation; the big firm's first company, there at every
# size), and a search nothing matches.
EMPRESAS_KINDS = {"page 1": {}, "search name": {"q": "silva"},
                  "search CNPJ": {"q": _formatted_cnpj(seed.cnpj_for(5000))}, "search no match": {"q": "xyzw"}}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine and processes


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        pass
    return {"cores": os.cpu_count(), "cpu_model": model or platform.processor(), "ram_gb": round(mem_kb / 1024**2, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def proc_memory_mb(pid: int) -> dict:
    """RSS and PSS (proportional: shared pages split between the processes sharing them) in MB."""
    out = {"rss_mb": None, "pss_mb": None}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        out["rss_mb"] = round(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024, 1)
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        out["pss_mb"] = round(int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) / 1024, 1)
    except (OSError, AttributeError):
        pass
    return out


def children_of(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


# --------------------------------------------------------------------------- raw argon2id


def _argon_verify_loop(seconds: float) -> tuple[int, float]:
    """Raw verifies for `seconds` (auth's own PASSWORD_HASHER, same parameters): how many, and the
    CPU seconds this process spent on them."""
    from services.auth.services import PASSWORD_HASHER
    hashed = PASSWORD_HASHER.hash(PASSWORD)
    PASSWORD_HASHER.verify(hashed, PASSWORD)  # the first verify's allocation, as in a warm worker
    n, end, cpu0 = 0, time.perf_counter() + seconds, time.process_time()
    while time.perf_counter() < end:
        PASSWORD_HASHER.verify(hashed, PASSWORD)
        n += 1
    return n, time.process_time() - cpu0


def proc_cpu_seconds(pids) -> float:
    """utime + stime (/proc/<pid>/stat, every thread) of these processes, in seconds."""
    from .load import HZ, _stat_fields
    total = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f:
            total += int(f[12]) + int(f[13])
    return total / HZ


def proc_peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the highest RSS the process ever had."""
    try:
        return round(int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024, 1)
    except (OSError, AttributeError):
        return None


def _argon_params() -> dict:
    from services.auth.services import PASSWORD_HASHER
    return {"time_cost": PASSWORD_HASHER.time_cost, "memory_cost_kib": PASSWORD_HASHER.memory_cost,
            "parallelism": PASSWORD_HASHER.parallelism}


# --------------------------------------------------------------------------- HTTP helpers


def _csrf(html: str) -> str:
    from testsupport import csrf_token
    return csrf_token(html)


def http_login(url: str, email: str, password: str):
    import requests
    s = requests.Session()
    r = s.get(url + "/auth/entrar", timeout=30)
    r.raise_for_status()
    r = s.post(url + "/auth/entrar", data={"email": email, "password": password, "csrf_token": _csrf(r.text)},
               allow_redirects=False, timeout=30)
    if r.status_code != 303 or not any(c.name.endswith("balcao_session") for c in s.cookies):
        raise RuntimeError(f"login of {email} failed: HTTP {r.status_code}")
    return s


def login_vs_raw(url: str, emails: list[str], *, rounds: int, seconds: float, threads: int, cores: int,
                 auth_workers=None) -> dict:
    """Concurrent password logins (POST /auth/entrar with CSRF → 303 + session cookie) through the
    gateway, alternating with rounds of raw argon2id verifies (one process per core): the machine is
    shared, so each login round is compared with the raw round just before it.

    Issue 11's figure is CPU, which a shared machine does not inflate the way it does wall time:
    the auth gunicorn workers' CPU (`auth_workers()`: their pids; /proc utime + stime) from the
    round's start until its last login has been answered, divided by the logins served in it,
    against the CPU per verify of the raw round (the pool's own process time)."""
    import requests
    latencies, stamps, errors = [], [], []
    lock = threading.Lock()
    stop, go = threading.Event(), threading.Event()

    def client(i: int):
        s = requests.Session()
        page = s.get(url + "/auth/entrar", timeout=30)
        token = _csrf(page.text)
        # a login issues a new CSRF cookie (the new session's): each POST goes with the login page's
        # cookie and token again, as from a browser that just opened the page (device cookie kept)
        csrf = next(c for c in s.cookies if c.name.endswith("balcao_csrf"))
        email = emails[i % len(emails)]
        while not stop.is_set():
            if not go.wait(0.2):
                continue
            s.cookies.set("balcao_session", None)
            s.cookies.set(csrf.name, csrf.value, domain=csrf.domain, path=csrf.path)
            t0 = time.perf_counter()
            r = s.post(url + "/auth/entrar", data={"email": email, "password": PASSWORD, "csrf_token": token},
                       allow_redirects=False, timeout=30)
            t1 = time.perf_counter()
            ok = r.status_code == 303 and "balcao_session=" in r.headers.get("Set-Cookie", "")
            with lock:
                if ok:
                    latencies.append(t1 - t0)
                    stamps.append(t1)
                else:
                    errors.append(r.status_code)

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    go.set()
    time.sleep(1.0)  # warm-up: sessions, CSRF pages, connection pools, argon2 memory
    go.clear()
    raw_rates, login_rates, ratios, windows = [], [], [], []
    raw_cpu_ms, login_cpu_ms, cpu_ratios = [], [], []
    pids = list(auth_workers()) if auth_workers else []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        pool.map(_argon_verify_loop, [0.2] * cores)
        for _ in range(rounds):
            time.sleep(0.5)  # let in-flight logins finish
            counts = pool.map(_argon_verify_loop, [seconds] * cores)
            raw = sum(n for n, _cpu in counts) / seconds / cores
            raw_cpu = sum(cpu for _n, cpu in counts) / max(1, sum(n for n, _cpu in counts))
            cpu0 = proc_cpu_seconds(pids)
            go.set()
            start = time.perf_counter()
            time.sleep(seconds)
            end = time.perf_counter()
            go.clear()
            windows.append((start, end))
            with lock:
                done = sum(1 for t in stamps if start <= t < end)
            login = done / (end - start) / cores
            raw_rates.append(raw)
            login_rates.append(login)
            ratios.append(login / raw if raw else math.nan)
            if pids:  # every login of the round answered (the clients wait on `go`), then the CPU
                time.sleep(0.5)
                with lock:
                    served = sum(1 for t in stamps if t >= start)
                cpu = proc_cpu_seconds(pids) - cpu0
                if served:
                    raw_cpu_ms.append(raw_cpu * 1000)
                    login_cpu_ms.append(cpu / served * 1000)
                    cpu_ratios.append(raw_cpu / (cpu / served) if cpu else math.nan)
    stop.set()
    for w in workers:
        w.join(60)
    measured = [lat for lat, t in zip(latencies, stamps, strict=True) if any(a <= t < b for a, b in windows)]
    return {"argon2_raw": {"per_core": summarize(raw_rates), "params": _argon_params()},
            "login": {"per_core": summarize(login_rates), "total_per_s": summarize([r * cores for r in login_rates]),
                      "latency_ms": summarize(ms(measured)), "errors": len(errors), "threads": threads,
                      "ratio_by_round": summarize(ratios), "ratio_to_raw": summarize(ratios)["median"],
                      "cpu": {"auth_workers": len(pids), "raw_verify_cpu_ms": summarize(raw_cpu_ms),
                              "login_cpu_ms": summarize(login_cpu_ms), "ratio_by_round": summarize(cpu_ratios),
                              "ratio": summarize(cpu_ratios)["median"]},
                      "auth_peak_rss_mb": [proc_peak_rss_mb(pid) for pid in pids]}}


_REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+)"')  # the waiting page's reload


def link_once(s, url: str, job: dict, *, correlation_id: str | None = None,
              phases: dict | None = None) -> tuple[bool, str, float, float]:
    """One link request on the session `s`: open the link page, [Vincular Contas] with the
    password, then follow /vinculando/<id> as a browser does until the firm's home shows: the page
    waits server-side for the link (users' long poll, views/home.py LINK_WAIT_SECONDS) and answers
    303 to the home once it is granted; a waiting page that comes back instead is reloaded after
    its own refresh interval (`<meta http-equiv="refresh">`, 1 s). Returns (ok, reason,
    wall-clock time of the POST, seconds from the POST to the home page). `correlation_id`: sent
    as X-Request-ID on the POST, so the chain's log lines carry it (the hops). `phases`, if given,
    gets the seconds after the POST at which its answer came ("post"), the /vinculando request
    that answered 303 was sent ("linked_poll") and the home page was requested ("home_get"), and
    how many /vinculando requests it took ("polls")."""
    s.cookies.clear()
    page = s.get(url + "/auth/convite", params={"ticket": job["ticket"]}, timeout=30)
    token = _csrf(page.text)
    headers = {"X-Request-ID": correlation_id} if correlation_id else {}
    wall, t0 = time.time(), time.perf_counter()
    r = s.post(url + "/auth/convite/vincular", data={"ticket": job["ticket"], "password": PASSWORD,
                                                     "csrf_token": token}, headers=headers,
               allow_redirects=False, timeout=30)
    location = r.headers.get("Location", "")
    ph = phases if phases is not None else {}
    ph["post"], ph["polls"] = time.perf_counter() - t0, 0
    ok, reason = False, f"POST vincular: HTTP {r.status_code} {location}"
    if r.status_code == 303 and "/vinculando/" in location:
        reason = "no firm home within 60 s"
        deadline = t0 + 60
        while time.perf_counter() < deadline:
            sent = time.perf_counter() - t0
            r = s.get(url + location, allow_redirects=False, timeout=30)
            ph["polls"] += 1
            if r.status_code == 303:
                ph["linked_poll"], ph["home_get"] = sent, time.perf_counter() - t0
                home = s.get(url + r.headers["Location"], timeout=30)
                ok = home.status_code == 200 and job["firm_name"] in home.text
                reason = f"home {r.headers['Location']}: HTTP {home.status_code}"
                break
            if r.status_code != 200:
                reason = f"GET {location}: HTTP {r.status_code}"
                break
            refresh = _REFRESH.search(r.text)
            time.sleep(int(refresh.group(1)) if refresh else 1)
    return ok, reason, wall, time.perf_counter() - t0


def link_benchmark(url: str, jobs: list[dict], *, threads: int) -> dict:
    """Link requests from `threads` concurrent clients (link_once each): the rate."""
    import requests
    work: queue.Queue = queue.Queue()
    for job in jobs:
        work.put(job)
    latencies, errors = [], []
    lock = threading.Lock()

    def client():
        s = requests.Session()
        while True:
            try:
                job = work.get_nowait()
            except queue.Empty:
                return
            ok, reason, _wall, seconds = link_once(s, url, job)
            with lock:
                if ok:
                    latencies.append(seconds)
                else:
                    errors.append(reason)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    elapsed = time.perf_counter() - start
    # rate per worker-thread batch: completions over the run, and per-link latency
    return {"per_s": len(latencies) / elapsed if elapsed else 0.0, "completed": len(latencies),
            "errors": len(errors), "error_samples": sorted(set(errors))[:5],
            "latency_ms": summarize(ms(latencies)), "threads": threads}


# Issue 11 target 5: the link request's floor. Commits between the POST and the new firm's home
# (each on its service's database): auth web commits link.verified (outbox) and the new session;
# auth relay marks link.verified published; invitations consumes it (invitation accepted +
# invitation.accepted in its outbox + the inbox row); invitations relay marks it published; users
# consumes it (grant_membership). The credentials check's read-only transaction is not counted.
LINK_COMMITS = {"auth": 3, "invitations": 2, "users": 1}
# The broker hops: link.verified (auth → invitations), invitation.accepted (invitations → users).
LINK_BROKER_HOPS = 2
LINK_HOP_LINES = (  # (hop, service log, message prefix), as chain.HOP_LINES
    ("auth relay published link.verified", "auth-worker", "published link.verified"),
    ("invitations consumed + committed", "invitations-worker", "handled link.verified"),
    ("invitations relay published invitation.accepted", "invitations-worker", "published invitation.accepted"),
    ("users granted the membership (committed)", "users-worker", "handled invitation.accepted"),
)


def argon_verify_times(reps: int) -> list[float]:
    """Seconds of one raw argon2id verify (auth's own PASSWORD_HASHER, same parameters) in this
    process, `reps` times, one at a time."""
    from services.auth.services import PASSWORD_HASHER
    hashed = PASSWORD_HASHER.hash(PASSWORD)
    PASSWORD_HASHER.verify(hashed, PASSWORD)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        PASSWORD_HASHER.verify(hashed, PASSWORD)
        out.append(time.perf_counter() - t0)
    return out


def link_floor(*, broker_url: str, urls: dict[str, str], reps: int) -> dict:
    """The link request's floor, measured now: one raw argon2id verify + LINK_BROKER_HOPS raw kombu
    publish → consume round trips on the same broker (bench.chain.kombu_round_trips) + the chain's
    commits timed alone on the services' own databases (bench.chain.commit_times); p50 of each, ms."""
    from statistics import median
    argon = median(argon_verify_times(reps)) * 1000
    rt = median(chain.kombu_round_trips(broker_url, reps)) * 1000
    commits = {svc: median(chain.commit_times(urls[svc], reps)) * 1000 for svc in LINK_COMMITS}
    commit_ms = sum(n * commits[svc] for svc, n in LINK_COMMITS.items())
    return {"floor_ms": argon + LINK_BROKER_HOPS * rt + commit_ms, "argon2_verify_p50": argon,
            "kombu_round_trip_p50": rt, "broker_hops": LINK_BROKER_HOPS, "commits_ms": commit_ms,
            "commits": sum(LINK_COMMITS.values()), "commit_p50_by_service": commits}


def server_request_seconds(metrics_urls: list[str]) -> dict[str, tuple[float, float]]:
    """{"<service> <METHOD> <endpoint>": (seconds, requests)} so far, from the web processes'
    balcao_http_request_duration_seconds (sum, count) at `metrics_urls` — the time inside the
    app, without nginx and the client."""
    import requests
    out: dict[str, list[float]] = {}
    pat = re.compile(r'^balcao_http_request_duration_seconds_(sum|count)\{([^}]*)\} ([0-9.e+-]+)$')
    for murl in metrics_urls:
        try:
            text = requests.get(murl, timeout=10).text
        except requests.RequestException as exc:
            log(f"metrics at {murl}: {exc}")
            continue
        for line in text.splitlines():
            m = pat.match(line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
                key = f"{labels.get('service')} {labels.get('method')} {labels.get('endpoint')}"
                out.setdefault(key, [0.0, 0.0])[0 if m.group(1) == "sum" else 1] += float(m.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


def server_ms_between(before: dict, after: dict) -> dict[str, float]:
    """Mean ms per request inside the app, per endpoint, between two server_request_seconds()."""
    out = {}
    for key, (total, n) in after.items():
        t0, n0 = before.get(key, (0.0, 0.0))
        if n - n0 > 0:
            out[key] = (total - t0) * 1000 / (n - n0)
    return out


def link_vs_floor(url: str, jobs: list[dict], *, broker_url: str, urls: dict[str, str], logs_dir: Path,
                  reps: int, metrics_urls: list[str] = ()) -> dict:
    """One run of issue 11's target 5: the link requests of `jobs` one at a time (latency, not
    throughput: nothing queues behind another verify), then the floor; p50 / floor, and the hops
    (ms after the POST at which each worker logged its step, by the POST's correlation id)."""
    import requests
    s = requests.Session()
    latencies, errors, started = [], [], {}
    phases: dict[str, list[float]] = {}
    server_before = server_request_seconds(list(metrics_urls))
    for i, job in enumerate(jobs):
        cid = f"bench-link-{i}-{uuid.uuid4().hex[:8]}"
        ph: dict = {}
        ok, reason, wall, seconds = link_once(s, url, job, correlation_id=cid, phases=ph)
        if ok:
            latencies.append(seconds)
            started[cid] = wall
            for k, v in ph.items():
                phases.setdefault(k, []).append(v * 1000 if k != "polls" else v)
        else:
            errors.append(reason)
    server = server_ms_between(server_before, server_request_seconds(list(metrics_urls)))
    floor = link_floor(broker_url=broker_url, urls=urls, reps=reps)
    p50 = percentile(latencies, 50) * 1000
    time.sleep(0.5)  # the workers' last log lines reach their files
    return {"n": len(latencies), "errors": len(errors), "error_samples": sorted(set(errors))[:5],
            "latency_ms": summarize(ms(latencies)), **floor, "floor_ratio": p50 / floor["floor_ms"],
            "hops_ms": chain.hop_times(logs_dir, started, LINK_HOP_LINES),
            "client_ms": {k: percentile(v, 50) for k, v in phases.items()},
            "server_mean_ms": {k: v for k, v in server.items() if "metrics" not in k and "healthz" not in k}}


def timed_gets(session, url: str, paths: list[str], *, reps: int, warmup: int, expect: str | None = None) -> dict:
    """Sequential GETs (one request in flight: latency, not throughput), round-robin over paths."""
    out = {p: [] for p in paths}
    for _ in range(warmup):
        for p in paths:
            session.get(url + p, timeout=30)
    for _ in range(reps):
        for p in paths:
            t0 = time.perf_counter()
            r = session.get(url + p, timeout=30, allow_redirects=False)
            dt = time.perf_counter() - t0
            if r.status_code != 200 or (expect and expect not in r.text):
                raise RuntimeError(f"GET {p}: HTTP {r.status_code}")
            out[p].append(dt)
    return out


def invitation_benchmark(config, sink: chain.SmtpSink, *, firm_id, count: int, threads: int) -> dict:
    """Activations ([Ativar] + [Envie agora] = register_client_user(access="now"), each its own
    transaction, from `threads` concurrent staff) → invitations → notifier → the e-mail on SMTP."""
    work: queue.Queue = queue.Queue()
    for i in range(count):
        work.put((f"Pessoa Convidada {i}", f"convidada{i}@bench.example"))
    started: dict[str, float] = {}
    lock = threading.Lock()

    def staff():
        while True:
            try:
                name, email = work.get_nowait()
            except queue.Empty:
                return
            t0 = time.time()  # the sink stamps arrivals with the wall clock
            seed.invite(config, firm_id=firm_id, people=[(name, email)])
            with lock:
                started[email] = t0

    t_start = time.time()
    workers = [threading.Thread(target=staff, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    sink.wait(list(started), timeout=180)
    arrived = {e: sink.arrivals[e] for e in started if e in sink.arrivals}
    latencies = [arrived[e] - started[e] for e in arrived]
    span = (max(arrived.values()) - t_start) if arrived else math.nan
    return {"per_s": len(arrived) / span if arrived else 0.0, "activated": len(started), "delivered": len(arrived),
            "latency_ms": summarize(ms(latencies)), "threads": threads}


def kombu_rate(broker_url: str, *, count: int) -> dict:
    """Raw kombu publish → consume of `count` small persistent messages on the same broker."""
    from kombu import Connection, Exchange, Queue
    name = "balcao.bench." + uuid.uuid4().hex[:8]
    exchange = Exchange(name, type="direct", durable=False, auto_delete=True)
    q = Queue(name, exchange, routing_key=name, auto_delete=True, durable=False)
    received = []
    with Connection(broker_url) as conn:
        with conn.channel() as ch:
            q(ch).declare()
        t0 = time.perf_counter()
        with conn.Producer() as producer:
            for i in range(count):
                producer.publish({"i": i}, exchange=exchange, routing_key=name, delivery_mode=2)
        t_pub = time.perf_counter()
        with conn.Consumer(q, callbacks=[lambda body, msg: (received.append(body), msg.ack())], prefetch_count=200):
            deadline = time.monotonic() + 60
            while len(received) < count and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    pass
                except OSError:
                    break
        t_end = time.perf_counter()
        with conn.channel() as ch:
            q(ch).delete()
    return {"publish_per_s": count / (t_pub - t0), "publish_consume_per_s": len(received) / (t_end - t0),
            "messages": count, "received": len(received)}


# --------------------------------------------------------------------------- in-process SQL counts


class InProcessApp:
    """A service's app in this process on the same databases and keys, logged in as one person, to
    count SQL statements per request with testsupport.count_queries' hook (exactly the statements
    the web worker sends) and to capture them for the floor's replay."""

    def __init__(self, config, *, service: str, identity_id, email: str, name: str):
        from werkzeug.test import Client
        from werkzeug.wrappers import Response

        from services.common.runtime import service_module
        self.config = config
        self.service = service
        self.client = Client(service_module(service, "app").create_app(config), Response, use_cookies=True)
        self._who = {"identity_id": identity_id, "email": email, "name": name}
        self.renew()

    def renew(self) -> None:
        """A fresh session token (one lasts 10 minutes: a long seed would outlive it, and the
        page would answer 303 to the login page instead of the page being captured)."""
        from services.common.keys import KeyRing
        from services.common.sessions import issue_session_token
        token = issue_session_token(KeyRing(self.config.keys_dir), **self._who)
        self.client.set_cookie("balcao_session", token, domain="localhost")

    def capture(self, path: str, query: dict | None = None, *, pings: bool = False) -> list[tuple[str, object]]:
        """The SQL statements of one request, each with its parameters as the DB-API driver got
        them (what page_vs_floor replays directly on the database). `pings`: with the pool's
        pre-ping (services/common/db.py), each connection checkout's "SELECT 1" too — sent by
        the page, but not a statement of the page's own (not in the SQL/request count)."""
        from sqlalchemy import event

        from services.common.runtime import database
        self.client.get(path, query_string=query)  # warm caches (same as a warm worker)
        engine = database(self.service, self.config).engine
        sent: list[tuple[str, object]] = []

        def _before(conn, cursor, statement, parameters, context, executemany):
            sent.append((statement, parameters))

        def _checkout(dbapi_connection, record, proxy):
            if getattr(engine.pool, "_pre_ping", False):
                sent.append(("SELECT 1", None))

        event.listen(engine, "before_cursor_execute", _before)
        if pings:
            event.listen(engine.pool, "checkout", _checkout)
        try:
            r = self.client.get(path, query_string=query)
        finally:
            event.remove(engine, "before_cursor_execute", _before)
            if pings:
                event.remove(engine.pool, "checkout", _checkout)
        if r.status_code not in (200, 303) or "/auth/entrar" in r.headers.get("Location", ""):
            raise RuntimeError(f"in-process GET {path}: HTTP {r.status_code} {r.headers.get('Location', '')}")
        return sent

    def statements(self, path: str, query: dict | None = None) -> int:
        return len(self.capture(path, query))


class InProcessUsers(InProcessApp):
    """The users app in process (figures 3, 4, 7, 8, 9)."""

    def __init__(self, config, *, identity_id, email: str, name: str):
        super().__init__(config, service="users", identity_id=identity_id, email=email, name=name)


# --------------------------------------------------------------------------- floors


def raw_connection(url: str):
    """A plain DB-API connection to a service's database, without SQLAlchemy: psycopg for
    PostgreSQL (what the floor is measured with), sqlite3 for the smoke test's SQLite."""
    from sqlalchemy.engine import make_url
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        import sqlite3
        return sqlite3.connect(u.database)
    import psycopg
    return psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))


def replay(conn, statements: list[tuple[str, object]]) -> list[int]:
    """Executes a request's statements on `conn`, each with its parameters, fetching every row,
    in one transaction rolled back at the end (as the pool does when a request's session ends);
    the number of rows of each."""
    counts = []
    cur = conn.cursor()
    try:
        for statement, parameters in statements:
            cur.execute(statement, parameters)
            counts.append(len(cur.fetchall()) if cur.description else 0)
    finally:
        cur.close()
        conn.rollback()
    return counts


def page_vs_floor(session, url: str, paths: dict[str, str], captured: dict[str, list], conn, *, reps: int,
                  warmup: int, expect: str) -> dict[str, dict[str, list[float]]]:
    """Each kind's page through the gateway, and beside it (measured right after, so both see the
    same machine) its **floor**: the same SQL statements executed directly on the same database
    (`replay` on a psycopg connection) plus one request for a static file through the gateway —
    what no code of ours could beat. One request in flight; {kind: {"page": [s…], "floor": [s…]}}."""
    out: dict[str, dict[str, list[float]]] = {kind: {"page": [], "floor": []} for kind in paths}
    for i in range(warmup + reps):
        for kind, path in paths.items():
            t0 = time.perf_counter()
            r = session.get(url + path, timeout=30, allow_redirects=False)
            t1 = time.perf_counter()
            if r.status_code != 200 or expect not in r.text:
                raise RuntimeError(f"GET {path}: HTTP {r.status_code}")
            replay(conn, captured[kind])
            static = session.get(url + STATIC_PATH, timeout=30)
            t2 = time.perf_counter()
            if static.status_code != 200:
                raise RuntimeError(f"GET {STATIC_PATH}: HTTP {static.status_code}")
            if i >= warmup:
                out[kind]["page"].append(t1 - t0)
                out[kind]["floor"].append(t2 - t1)
    return out


def floor_figure(timings: dict[str, dict[str, list[float]]], sql: dict[str, int]) -> dict:
    """A figure at one size: p50/p99 of every kind's pages together, of their floors, the ratio of
    the two medians; the same by kind, with each kind's SQL statements per request."""
    pages = [t for d in timings.values() for t in d["page"]]
    floors = [t for d in timings.values() for t in d["floor"]]
    page_ms, floor_ms = summarize(ms(pages)), summarize(ms(floors))
    by_kind = {}
    for kind, d in timings.items():
        k_page, k_floor = summarize(ms(d["page"])), summarize(ms(d["floor"]))
        by_kind[kind] = {"ms": k_page, "floor_ms": k_floor, "floor_ratio": k_page["median"] / k_floor["median"],
                         "sql_statements": sql[kind]}
    return {"all_ms": page_ms, "floor_ms": floor_ms, "floor_ratio": page_ms["median"] / floor_ms["median"],
            "by_kind": by_kind}


def sized_summary(figures: dict[str, dict]) -> dict:
    """The size ratio (p50 at the largest size / p50 at the smallest) and whether the SQL
    statements per request stayed the same at every size, kind by kind. Beside it (no budget) the
    same ratio of page/floor ratios: the sizes are measured one after the other, and when the
    machine's load changes in between, the floors move with the pages."""
    first, last = list(figures)[0], list(figures)[-1]
    counts = {tuple(sorted((k, v["sql_statements"]) for k, v in d["by_kind"].items())) for d in figures.values()}
    return {"sizes": [first, last], "p50_ratio": figures[last]["all_ms"]["median"] / figures[first]["all_ms"]["median"],
            "floor_normalized_ratio": figures[last]["floor_ratio"] / figures[first]["floor_ratio"],
            "sql_constant": len(counts) == 1}


def list_paths(slug: str) -> dict[str, str]:
    from urllib.parse import urlencode
    base = f"/e/{slug}/configuracoes/usuarios-de-clientes"
    return {kind: base + ("?" + urlencode(q) if q else "") for kind, q in LIST_KINDS.items()}


def empresas_paths(slug: str) -> dict[str, str]:
    from urllib.parse import urlencode
    base = f"/e/{slug}/configuracoes/empresas"
    return {kind: base + ("?" + urlencode(q) if q else "") for kind, q in EMPRESAS_KINDS.items()}


def measure_vs_floor(session, url: str, in_proc: InProcessUsers, paths: dict[str, str], kinds: dict[str, dict],
                     conn, *, reps: int, warmup: int, expect: str, runs: int = RUNS, db_tag: str | None = None) -> dict:
    """One figure at one size: the statements of each kind captured in-process, then page_vs_floor
    `runs` times (each under a LoadMonitor); every number is the median of the runs
    (stats.median_of_runs), each run's page/floor ratio and load kept beside it."""
    captured = {kind: in_proc.capture(path.split("?")[0], kinds[kind], pings=True) for kind, path in paths.items()}
    sql = {kind: sum(1 for st, _p in c if st != "SELECT 1") for kind, c in captured.items()}
    figures, loads = [], []
    for i in range(runs):
        with LoadMonitor(db_tag) as monitor:
            timings = page_vs_floor(session, url, paths, captured, conn, reps=reps,
                                    warmup=warmup if i == 0 else 1, expect=expect)
        figures.append(floor_figure(timings, sql))
        loads.append(monitor.result())
    figure = median_of_runs(figures)
    figure["runs"] = [{"p50_ms": f["all_ms"]["median"], "floor_ratio": f["floor_ratio"], "load": ld}
                      for f, ld in zip(figures, loads, strict=True)]
    figure["load"] = merge_loads(loads)
    figure["loadavg"] = loadavg()[0]  # the 1-minute load right after
    return figure


# --------------------------------------------------------------------------- databases


def fresh_databases(server_url: str, tag: str) -> dict[str, str]:
    from testsupport import fresh_postgres_databases
    return fresh_postgres_databases(server_url, tag)


def drop_databases(server_url: str, urls: dict[str, str]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from services.common.runtime import _databases
    for key in [k for k in _databases if k.split("|", 1)[1] in urls.values()]:
        _databases.pop(key).engine.dispose()
    admin = create_engine(server_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in urls.values():
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def analyze(config, service: str, *, vacuum: bool = False) -> None:
    """What autovacuum does shortly after a bulk load: fresh planner statistics; with `vacuum`,
    also the visibility map (PostgreSQL ≥ 13 vacuums a table after enough inserts), without which
    an index-only scan still visits the heap — the staff list's search walks its covering index."""
    from sqlalchemy import text

    from services.common.runtime import database
    engine = database(service, config).engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)" if vacuum else "ANALYZE"))


def private_broker(url: str):
    """A private vhost of the machine's RabbitMQ for the run (other test runs and benchmarks on the
    machine consume the same queue names on "/"); the URL unchanged where that is not possible."""
    from testsupport import private_vhost
    return private_vhost(url)


# --------------------------------------------------------------------------- embedded mode


def embedded_memory(*, warm_reps: int) -> dict:
    """`balcao run` (demo data) in a subprocess, warmed with the same pages, then its RSS."""
    import requests

    from deploy.stack import free_port
    tmp = Path(tempfile.mkdtemp(prefix="balcao-bench-embedded-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALCAO_")}
    env.update(BALCAO_VAR_DIR=str(tmp / "var"), PORT=str(port), BALCAO_DEMO="1", PYTHONPATH=str(REPO_ROOT))
    logf = open(tmp / "embedded.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", "run"], cwd=REPO_ROOT, env=env, stdout=logf,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(url + "/auth/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("embedded mode did not start:\n" + (tmp / "embedded.log").read_text()[-3000:])
            time.sleep(0.3)
        from services.provision import DEMO_LOGINS
        (_, ana, ana_pw, _), _bruno, (_, carlos, carlos_pw, _), *_others = DEMO_LOGINS
        staff = http_login(url, ana, ana_pw)
        paths = list(list_paths("contabilidade-alfa").values()) + ["/e/contabilidade-alfa/"]
        timed_gets(staff, url, paths, reps=warm_reps, warmup=1)
        client = http_login(url, carlos, carlos_pw)
        for _ in range(warm_reps):
            client.get(url + "/trocar-escritorio?escritorio=contabilidade-alfa", timeout=30)
        pids = [proc.pid] + children_of(proc.pid)
        mem = {pid: proc_memory_mb(pid) for pid in pids}
        return {"rss_mb": round(sum(m["rss_mb"] or 0 for m in mem.values()), 1),
                "processes": len(pids), "per_process": {str(k): v for k, v in mem.items()}}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- the run


def run(quick: bool = False, embedded: bool = True, lift_rate_limits: bool = True, only=FIGURES) -> dict:
    """The whole run; `only`: the FIGURES to measure (the seed they need: the users service's firms
    for its figures, the documents firms for theirs)."""
    import dataclasses

    from deploy.stack import Stack, free_port
    from services.common.config import SERVICES
    from services.common.keys import KeyRing
    from services.common.runtime import migrate
    from testsupport import make_test_config
    from testsupport.seaweed import SeaweedServer

    p = QUICK if quick else FULL
    machine = machine_info()
    cores = machine["cores"]
    server_url = os.environ.get("BALCAO_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    broker_url = os.environ.get("BALCAO_BENCH_BROKER_URL", DEFAULT_BROKER_URL)
    tag = "bench_" + uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="balcao-bench-"))
    port = free_port()
    machine["loadavg_at_start"] = loadavg()
    db_tag = f"balcao_{tag}_"  # in the command line of the run's PostgreSQL backends (bench/load.py)
    only = set(only)
    if only - set(FIGURES):
        raise ValueError(f"unknown figures {sorted(only - set(FIGURES))}; known: {', '.join(FIGURES)}")
    results: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
                     "figures": [f for f in FIGURES if f in only],
                     "machine": machine, "params": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}}
    log(f"{cores} cores, {machine['cpu_model']}, load average {' '.join(machine['loadavg_at_start'])}; "
        f"databases balcao_{tag}_* on {server_url.split('@')[-1]}")
    urls = fresh_databases(server_url, tag)
    stack = None
    sinks: list = []
    object_store = None
    vhost = private_broker(broker_url)
    broker_url = vhost.__enter__()
    results["broker_vhost"] = broker_url.rsplit("/", 1)[-1] or "/"
    try:
        config = make_test_config(workdir / "var", urls, broker_url=broker_url, public_url=f"http://127.0.0.1:{port}")
        from services.users import pii
        pii.configure(config)  # the bulk seed encrypts CPFs with the key the stack will read (keys dir)
        for svc in SERVICES:
            migrate(svc, config)
        # The distributed mode keeps the documents on S3: a SeaweedFS server of the run's own (its
        # credentials are the test server's dummies, also in this process's environment for boto3:
        # the bench stores documents through the service's vault too).
        object_store = SeaweedServer(workdir / "seaweed")
        log(f"starting SeaweedFS (S3 at {object_store.endpoint})")
        object_store.start()
        os.environ.update(object_store.env)
        config = dataclasses.replace(config, documents_s3_endpoint=object_store.endpoint,
                                     documents_s3_bucket=object_store.bucket)
        env = {"BALCAO_BROKER_URL": broker_url, "BALCAO_VAR_DIR": str(config.var_dir),
               "BALCAO_KEYS_DIR": str(config.keys_dir), "BALCAO_DEMO": "0",
               **{f"BALCAO_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()},
               **object_store.env, "BALCAO_DOCUMENTS_S3_ENDPOINT": object_store.endpoint,
               "BALCAO_DOCUMENTS_S3_BUCKET": object_store.bucket}
        sink = chain.SmtpSink()
        sink.controller.start()
        sinks.append(sink)
        env = {**env, "BALCAO_SMTP_URL": sink.url}
        if lift_rate_limits:
            env["BALCAO_BENCH_LIFT_RATE_LIMITS"] = "1"
            patch_dir = str(Path(__file__).resolve().parent / "stackpatch")
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (patch_dir, os.environ.get("PYTHONPATH", "")) if p)
        results["rate_limits_lifted"] = lift_rate_limits
        stack = Stack(env=env, gateway_port=port, workdir=workdir / "stack", web_workers=cores)
        log(f"starting the stack ({cores} gunicorn workers per service) at {stack.url}")
        stack.start(timeout=120)
        url = stack.url

        # ---- seed
        t_seed = time.perf_counter()
        admin_email = "admin@bench.example"
        admin_id = seed.register_identity(config, email=admin_email, name="Admin Bench", password=PASSWORD)
        link_jobs: list[dict] = []
        if only & set(USERS_FIGURES):  # the users service's firms (the documents figures make their own)
            big = seed.create_firm(config, n=1, name="Contabilidade Grande", admin_identity_id=admin_id,
                                   admin_email=admin_email)
            link_firm = seed.create_firm(config, n=2, name="Contabilidade Vínculo", admin_identity_id=admin_id,
                                         admin_email=admin_email)
            person_firms = [seed.create_firm(config, n=10 + i, name=f"Contabilidade Cliente {i:02d}",
                                             admin_identity_id=admin_id, admin_email=admin_email) for i in range(10)]
            real = 2 + len(person_firms)
            other_ids = seed.bulk_firms(config, count=p["firms"] - real, start=1000)
            for chunk in range(0, len(other_ids), 50):
                for j, fid in enumerate(other_ids[chunk:chunk + 50]):
                    seed.bulk_client_users(config, firm_id=fid, count=p["users_per_other_firm"],
                                           start=10_000_000 + (chunk + j) * 1000, seed=chunk + j)
            person_email = "pessoa.dez.escritorios@bench.example"
            if "client_home" in only:
                person_id = seed.register_identity(config, email=person_email, name="Pessoa Dez", password=PASSWORD)
                seed.client_of_firms(config, identity_id=person_id, email=person_email, name="Pessoa Dez Escritórios",
                                     firm_ids=[f["id"] for f in person_firms])
            login_emails = []
            for i in range(p["login_threads"] if "logins" in only else 0):
                email = f"login{i}@bench.example"
                seed.register_identity(config, email=email, name=f"Login {i}", password=PASSWORD)
                login_emails.append(email)
            link_people = []
            n_links = (p["links"] if "links" in only else 0) + (RUNS * p["link_seq"] if "link_floor" in only else 0)
            for i in range(n_links):
                email = f"vinculo{i}@bench.example"
                seed.register_identity(config, email=email, name=f"Vínculo {i}", password=PASSWORD)
                link_people.append((f"Pessoa Vínculo {i}", email))
            link_cus = seed.invite(config, firm_id=link_firm["id"], people=link_people)
            per = p["users_per_company"]
            company_ids = seed.create_companies(config, firm_id=big["id"], count=p["sizes"][0] // per, start=5000)
            seeded = seed.bulk_client_users(config, firm_id=big["id"], count=p["sizes"][0], start=0,
                                            company_ids=company_ids, per_company=per)
            colab_email = "colaboradora@bench.example"
            colab_id = seed.register_identity(config, email=colab_email, name="Colaboradora Bench", password=PASSWORD)
            if p["carteira"] > len(company_ids):
                raise RuntimeError("the carteira is larger than the big firm's companies at the first size")
            seed.add_colaborador(config, firm_id=big["id"], identity_id=colab_id, name="Colaboradora Bench",
                                 email=colab_email, company_ids=company_ids[:p["carteira"]])
            analyze(config, "users", vacuum=True)
            deadline, ready = time.monotonic() + 120, {}
            while link_cus:  # the chain (users → invitations → users) creates the invitations
                ready = seed.invitations_ready(config, client_user_ids=link_cus)
                if len(ready) == len(link_cus) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            keyring = KeyRing(config.keys_dir)
            from services.invitations.services import invitation_ticket
            link_jobs = [{"ticket": invitation_ticket(keyring, inv, via="email"), "firm_name": link_firm["name"]}
                         for inv in ready.values()]
        results["seed_seconds"] = round(time.perf_counter() - t_seed, 1)
        log(f"seeded in {results['seed_seconds']} s ({len(link_jobs)} invitations ready)")

        # ---- 1. logins vs raw argon2id
        if "logins" in only:
            log("logins through the gateway, alternating with raw argon2id verify rounds")
            auth_master = stack.processes["auth-web"].pid
            with LoadMonitor(db_tag) as monitor:
                results.update(login_vs_raw(url, login_emails, rounds=p["login_rounds"], seconds=p["login_seconds"],
                                            threads=p["login_threads"], cores=cores,
                                            auth_workers=lambda: children_of(auth_master)))
            results["login"]["load"] = monitor.result()
            from services.common.worker import WEB_THREADS
            results["login"]["concurrent_verifies"] = {"workers": cores, "threads": WEB_THREADS}

        # ---- 2. link requests
        if "links" in only:
            log(f"{len(link_jobs)} link requests")
            with LoadMonitor(db_tag) as monitor:
                results["link"] = link_benchmark(url, link_jobs[:p["links"]], threads=p["link_threads"])
            results["link"]["load"] = monitor.result()

        # ---- 2b. link requests one at a time against their floor (issue 11, target 5)
        if "link_floor" in only:
            seq_jobs = link_jobs[p["links"] if "links" in only else 0:]
            log(f"{RUNS} × {p['link_seq']} link requests one at a time, each run beside its floor")
            runs, loads = [], []
            for r in range(RUNS):
                with LoadMonitor(db_tag) as monitor:
                    runs.append(link_vs_floor(url, seq_jobs[r * p["link_seq"]:(r + 1) * p["link_seq"]],
                                              broker_url=broker_url, urls=urls, logs_dir=stack.logs_dir,
                                              reps=p["floor_reps"],
                                              metrics_urls=[f"http://127.0.0.1:{stack.metrics_ports[f'{svc}-web']}/metrics"
                                                            for svc in ("auth", "users")]))
                loads.append(monitor.result())
            results["link_floor"] = {**median_of_runs(runs), "load": merge_loads(loads),
                                     "ratio_by_run": [x["floor_ratio"] for x in runs],
                                     "errors": sum(x["errors"] for x in runs),
                                     "error_samples": sorted({e for x in runs for e in x["error_samples"]})[:5]}

        # ---- invitations (issue 3): activation → e-mail on SMTP, beside raw kombu
        if "invitations" in only:
            log(f"{p['invitations']} invitation e-mails through SMTP")
            with LoadMonitor(db_tag) as monitor:
                results["invitations"] = invitation_benchmark(config, sink, firm_id=link_firm["id"],
                                                              count=p["invitations"], threads=p["link_threads"])
            results["invitations"]["load"] = monitor.result()
            results["invitations"]["kombu_raw"] = kombu_rate(broker_url, count=p["kombu_messages"])

        # ---- 4. client home after switching firm
        if "client_home" in only:
            log("client home after switching firm")
            person = http_login(url, person_email, PASSWORD)
            for _ in range(p["warmup"]):
                person.get(url + f"/trocar-escritorio?escritorio={person_firms[0]['slug']}", timeout=30)
            home_runs, loads = [], []
            for _run in range(RUNS):
                home, switch = [], []
                with LoadMonitor(db_tag) as monitor:
                    for i in range(p["home_reps"]):
                        firm = person_firms[i % len(person_firms)]
                        t0 = time.perf_counter()
                        r = person.get(url + f"/trocar-escritorio?escritorio={firm['slug']}", allow_redirects=False,
                                       timeout=30)
                        t1 = time.perf_counter()
                        h = person.get(url + r.headers["Location"], allow_redirects=False, timeout=30)
                        t2 = time.perf_counter()
                        if r.status_code != 303 or h.status_code != 200 or firm["name"] not in h.text:
                            raise RuntimeError(f"switch to {firm['slug']}: HTTP {r.status_code}/{h.status_code}")
                        home.append(t2 - t1)
                        switch.append(t2 - t0)
                loads.append(monitor.result())
                home_runs.append({"home_ms": summarize(ms(home)), "switch_and_home_ms": summarize(ms(switch))})
            in_proc_person = InProcessUsers(config, identity_id=person_id, email=person_email, name="Pessoa Dez")
            results["client_home"] = {**median_of_runs(home_runs), "load": merge_loads(loads),
                                      "runs": [r["home_ms"]["median"] for r in home_runs],
                                      "sql_statements": in_proc_person.statements(f"/e/{person_firms[3]['slug']}/")}

        # ---- 3. staff list at every size; issue 9: the Colaborador's list and the Empresas list,
        # each beside its floor, as the big firm grows (companies and client users together)
        if only & LIST_FIGURES:
            staff = http_login(url, admin_email, PASSWORD)
            colab = http_login(url, colab_email, PASSWORD)
            in_proc_staff = InProcessUsers(config, identity_id=admin_id, email=admin_email, name="Admin Bench")
            in_proc_colab = InProcessUsers(config, identity_id=colab_id, email=colab_email, name="Colaboradora Bench")
            floor_conn = raw_connection(urls["users"])
            paths = list_paths(big["slug"])
            empresas = empresas_paths(big["slug"])
            results["list"], results["colaborador_list"], results["empresas"], results["staff_home"] = {}, {}, {}, {}
            for size in p["sizes"]:
                if seeded < size:
                    log(f"seeding the big firm up to {size} client users and {size // per} companies")
                    company_ids += seed.bulk_companies(config, firm_id=big["id"], count=size // per - len(company_ids),
                                                       start=5000 + len(company_ids))
                    seed.bulk_client_users(config, firm_id=big["id"], count=size - seeded, start=seeded,
                                           company_ids=company_ids, per_company=per)
                    seeded = size
                    analyze(config, "users", vacuum=True)
                    # a session lasts 10 minutes (services/common/sessions.py); seeding 100,000 rows on a
                    # busy machine can take longer: log in again, as a staff member would
                    staff = http_login(url, admin_email, PASSWORD)
                    colab = http_login(url, colab_email, PASSWORD)
                    in_proc_staff.renew()
                    in_proc_colab.renew()
                if "list" in only:
                    log(f"staff list at {size} client users")
                    results["list"][str(size)] = measure_vs_floor(
                        staff, url, in_proc_staff, paths, LIST_KINDS, floor_conn, reps=p["list_reps"],
                        warmup=p["warmup"], expect="Usuários de Clientes", db_tag=db_tag)
                if "colaborador_list" in only:
                    log(f"the Colaborador's list (carteira of {p['carteira']} companies) at {size} client users")
                    results["colaborador_list"][str(size)] = measure_vs_floor(
                        colab, url, in_proc_colab, paths, LIST_KINDS, floor_conn, reps=p["list_reps"],
                        warmup=p["warmup"], expect="Usuários de Clientes", db_tag=db_tag)
                if "empresas" in only:
                    log(f"Empresas list at {len(company_ids)} companies")
                    results["empresas"][str(len(company_ids))] = measure_vs_floor(
                        staff, url, in_proc_staff, empresas, EMPRESAS_KINDS, floor_conn, reps=p["list_reps"],
                        warmup=p["warmup"], expect="Empresas", db_tag=db_tag)
                if "staff_home" in only:  # no budget: what staff see first, as the firm grows
                    log(f"the staff home at {size} client users")
                    home = f"/e/{big['slug']}/"
                    results["staff_home"][str(size)] = {}
                    for who, session, in_proc in (("Administrador", staff, in_proc_staff),
                                                  ("Colaborador", colab, in_proc_colab)):
                        timings = timed_gets(session, url, [home], reps=max(p["list_reps"] // 5, 3), warmup=p["warmup"],
                                             expect="Usuários de Clientes por situação do convite")
                        results["staff_home"][str(size)][who] = {"ms": summarize(ms(timings[home])),
                                                                 "sql_statements": in_proc.statements(home)}
            floor_conn.close()
            for figure in ("list", "colaborador_list", "empresas"):
                if results[figure]:
                    results[figure + "_summary"] = sized_summary(results[figure])

        # ---- issue 10: the documents service
        if only & set(documents.FIGURES):
            with LoadMonitor(db_tag) as monitor:
                results.update(documents.run(stack, config=config, url=url, admin_id=admin_id, admin_email=admin_email,
                                             password=PASSWORD, workdir=workdir, only=only, p=p))
            results["documents_load"] = monitor.result()

        # ---- 5. memory of the stack
        if "memory" in only:
            # "after warm-up at idle": the web workers give freed heap back after IDLE_TRIM_SECONDS
            from services.common.worker import IDLE_TRIM_SECONDS
            time.sleep(IDLE_TRIM_SECONDS * 2 + 1)
            mem = {}
            for svc in SERVICES:
                master = stack.processes[f"{svc}-web"].pid
                workers = children_of(master)
                consumer = stack.processes[f"{svc}-worker"].pid
                mem[svc] = {"web_master": proc_memory_mb(master),
                            "web_workers": [proc_memory_mb(w) for w in workers],
                            "worker": proc_memory_mb(consumer),
                            "worker_children": [proc_memory_mb(c) for c in children_of(consumer)]}
            results["memory"] = mem
    finally:
        machine["loadavg_at_end"] = loadavg()
        if stack is not None:
            stack.stop()
        if object_store is not None:
            object_store.stop()
        vhost.__exit__(None, None, None)
        for sink in sinks:
            sink.controller.stop()
        try:
            drop_databases(server_url, urls)
        except Exception as exc:  # never leave the run without its results
            log(f"could not drop the bench databases: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
    if only & set(chain.FIGURES):  # issue 11: the invitation chain, on stacks of its own
        results.update(chain.run(quick=quick, only=only, server_url=server_url))
    if embedded and "memory" in only:
        log("embedded mode memory")
        results["embedded"] = embedded_memory(warm_reps=p["list_reps"] // 2 or 1)
    return results


# --------------------------------------------------------------------------- report


def rows_of(results: dict) -> list[Row]:
    """The table: every figure with its budget and verdict; a latency figure measured while the
    machine was busy (stats.machine_busy) says "inconclusive" instead of met/missed, with the load
    that was not the bench's own beside it."""
    cores = results["machine"]["cores"]
    rows = []
    a, lg = results.get("argon2_raw"), results.get("login")
    if a and lg:
        load = lg.get("load")
        rows.append(Row(f"raw argon2id verify /s/core (t={a['params']['time_cost']}, "
                        f"m={a['params']['memory_cost_kib']} KiB, p={a['params']['parallelism']})",
                        f"median {fmt(a['per_core']['median'])}, p99 {fmt(a['per_core']['p99'])}"))
        rows.append(Row(f"logins /s/core via gateway ({lg['threads']} clients, {cores} cores)",
                        f"median {fmt(lg['per_core']['median'])}, p99 {fmt(lg['per_core']['p99'])}"))
        rows.append(Row("login latency ms", f"p50 {fmt(lg['latency_ms']['median'])}, p99 {fmt(lg['latency_ms']['p99'])}"))
        rows.append(Row("login rate via gateway / raw argon2id rate (median of rounds; for operators)",
                        f"{fmt(lg['ratio_to_raw'], 2)} (p99 {fmt(lg.get('ratio_by_round', {}).get('p99'), 2)})"))
        cpu = lg.get("cpu")
        if cpu:
            rows.append(Row(f"CPU ms per raw argon2id verify / per login (auth's {cpu['auth_workers']} gunicorn "
                            "workers, /proc)",
                            f"{fmt(cpu['raw_verify_cpu_ms']['median'])} / {fmt(cpu['login_cpu_ms']['median'])}"))
            rows.append(Row("raw verify CPU / CPU per login (median of rounds)",
                            f"{fmt(cpu['ratio'], 2)} (rounds {fmt(cpu['ratio_by_round']['min'], 2)}–"
                            f"{fmt(cpu['ratio_by_round']['max'], 2)}); {load_note(load)}", ">= 0.90",
                            load_verdict("login_cpu_ratio", cpu["ratio"], load, cores)))
        peaks = [x for x in lg.get("auth_peak_rss_mb") or [] if x is not None]
        if peaks:
            conc = lg.get("concurrent_verifies") or {}
            n = conc.get("threads")
            rows.append(Row(f"auth gunicorn worker peak RSS MB under the login load (VmHWM; up to {n} verifies "
                            f"at once per worker × {conc.get('workers')} workers, 19 MiB each)",
                            " / ".join(fmt(x) for x in peaks)))
    lk = results.get("link")
    if lk:
        rows.append(Row(f"link requests /s ({lk['threads']} clients; {lk['completed']} ok, {lk['errors']} failed)",
                        fmt(lk["per_s"], 2)))
        rows.append(Row("link end-to-end latency ms (POST → new firm's home)",
                        f"p50 {fmt(lk['latency_ms']['median'], 0)}, p99 {fmt(lk['latency_ms']['p99'], 0)}; "
                        + load_note(lk.get("load"))))
    lf = results.get("link_floor")
    if lf:
        rows.append(Row(f"link request → new firm's home ms, one at a time ({lf['n']} per run, {lf['errors']} failed)",
                        f"p50 {fmt(lf['latency_ms']['median'])}, p99 {fmt(lf['latency_ms']['p99'])} "
                        f"(floor {fmt(lf['floor_ms'])}: argon2id {fmt(lf['argon2_verify_p50'])} + "
                        f"{lf['broker_hops']} × kombu {fmt(lf['kombu_round_trip_p50'], 2)} + "
                        f"{lf['commits']} commits {fmt(lf['commits_ms'], 2)})"))
        rows.append(Row("  link request p50 / floor (median of runs)",
                        f"{fmt(lf['floor_ratio'], 2)} (runs {', '.join(fmt(x, 2) for x in lf['ratio_by_run'])}); "
                        + load_note(lf.get("load")), "<= 2",
                        load_verdict("link_floor_ratio", lf["floor_ratio"], lf.get("load"), cores)))
        hops = lf.get("hops_ms") or {}
        if hops:
            c = lf.get("client_ms") or {}
            rows.append(Row("  link hops p50 ms since the POST", "; ".join(
                [f"POST answered {fmt(c.get('post'), 0)}"] + [f"{hop} {fmt(v['p50_ms'], 0)}" for hop, v in hops.items()]
                + [f"poll answering 303 sent {fmt(c.get('linked_poll'), 0)} (polls {fmt(c.get('polls'), 0)})",
                   f"home requested {fmt(c.get('home_get'), 0)}"])))
        server = lf.get("server_mean_ms") or {}
        if server:
            rows.append(Row("  link: mean ms inside the web app per request (auth, users; gunicorn metrics)", "; ".join(
                f"{k} {fmt(v, 1)}" for k, v in sorted(server.items()))))
    inv = results.get("invitations")
    if inv:
        k = inv["kombu_raw"]
        rows.append(Row(f"invitations /s, activation → e-mail on SMTP ({inv['delivered']}/{inv['activated']} delivered)",
                        fmt(inv["per_s"], 2)))
        rows.append(Row("invitation latency ms (activation → e-mail arrives)",
                        f"p50 {fmt(inv['latency_ms']['median'], 0)}, p99 {fmt(inv['latency_ms']['p99'], 0)}; "
                        + load_note(inv.get("load"))))
        rows.append(Row("raw kombu publish → consume /s (same broker)",
                        f"{fmt(k['publish_consume_per_s'], 0)} (publish alone {fmt(k['publish_per_s'], 0)})"))
    for figure, title, unit in (("list", "Staff list", "client users"),
                                ("colaborador_list", "Colaborador's list (carteira of {carteira} companies)",
                                 "client users"),
                                ("empresas", "Empresas list", "companies")):
        sizes = results.get(figure) or {}
        for size, d in sizes.items():
            load = d.get("load")
            sql = sorted({v["sql_statements"] for v in d["by_kind"].values()})
            runs = d.get("runs") or []
            rows.append(Row(f"{title.format(carteira=results.get('params', {}).get('carteira', '?'))}, "
                            f"{int(size):,} {unit}: ms (all kinds, median of {len(runs) or 1} runs)",
                            f"p50 {fmt(d['all_ms']['median'])} (floor {fmt(d['floor_ms']['median'])}), "
                            f"p99 {fmt(d['all_ms']['p99'])}; SQL/request {sql}"))
            worst = max(d["by_kind"].items(), key=lambda kv: kv[1]["floor_ratio"])
            rows.append(Row(f"  page p50 / floor p50 at {int(size):,} (worst kind: {worst[0]})",
                            f"{fmt(d['floor_ratio'], 2)} ({fmt(worst[1]['floor_ratio'], 2)}; runs "
                            + ", ".join(fmt(r["floor_ratio"], 2) for r in runs) + f"); {load_note(load)}",
                            "<= 2", load_verdict("floor_ratio", d["floor_ratio"], load, cores)))
            if figure == "list":
                for kind, k in d["by_kind"].items():
                    rows.append(Row(f"    {kind} at {int(size):,}: p50 ms (floor) / ratio",
                                    f"{fmt(k['ms']['median'])} ({fmt(k['floor_ms']['median'])}) / "
                                    f"{fmt(k['floor_ratio'], 2)}", "<= 2",
                                    load_verdict("floor_ratio", k["floor_ratio"], load, cores)))
        summary = results.get(figure + "_summary")
        if summary:
            a, b = summary["sizes"]
            load = merge_loads([sizes[a].get("load") or {}, sizes[b].get("load") or {}])
            rows.append(Row(f"{title.split(' (')[0]} p50 {int(b):,} / {int(a):,} {unit}",
                            f"{fmt(summary['p50_ratio'], 2)} (of page/floor ratios "
                            f"{fmt(summary.get('floor_normalized_ratio'), 2)})",
                            "<= 1.3", load_verdict("size_ratio", summary["p50_ratio"], load, cores)))
            rows.append(Row(f"{title.split(' (')[0]}: SQL statements constant across sizes",
                            str(summary["sql_constant"]), "constant", verdict("list_sql_constant",
                                                                             summary["sql_constant"])))
    for size, d in (results.get("staff_home") or {}).items():
        rows.append(Row(f"staff home (counts by invitation state; companies), {int(size):,} client users: ms",
                        "; ".join(f"{who} p50 {fmt(v['ms']['median'])}, SQL {v['sql_statements']}"
                                  for who, v in d.items())))
    ch = results.get("client_home")
    if ch:
        rows.append(Row(f"client home after switching firm (10 firms) ms; SQL {ch['sql_statements']}",
                        f"p50 {fmt(ch['home_ms']['median'])}, p99 {fmt(ch['home_ms']['p99'])}; "
                        + load_note(ch.get("load")), "p50 <= 20",
                        load_verdict("home_p50_ms", ch["home_ms"]["median"], ch.get("load"), cores)))
        rows.append(Row("switch (303) + home ms", f"p50 {fmt(ch['switch_and_home_ms']['median'])}, "
                                                 f"p99 {fmt(ch['switch_and_home_ms']['p99'])}"))
    for svc, m in results.get("memory", {}).items():
        workers = m["web_workers"]
        rss = [w["rss_mb"] for w in workers if w["rss_mb"] is not None]
        pss = [w["pss_mb"] for w in workers if w["pss_mb"] is not None]
        top_rss = max(rss, default=None)
        top_pss = max(pss, default=None)
        rows.append(Row(f"{svc}: gunicorn workers RSS MB at idle (each of {len(workers)})",
                        " / ".join(fmt(x) for x in rss) or "—", "<= 80", verdict("service_worker_rss_mb", top_rss)))
        rows.append(Row(f"{svc}: gunicorn workers PSS MB at idle (each)", " / ".join(fmt(x) for x in pss) or "—",
                        "<= 60", verdict("web_worker_pss_mb", top_pss)))
        rows.append(Row(f"{svc}: gunicorn master RSS MB (PSS)",
                        f"{fmt(m['web_master']['rss_mb'])} ({fmt(m['web_master']['pss_mb'])})"))
        rows.append(Row(f"{svc}: worker (consumers + relay) RSS MB", fmt(m["worker"]["rss_mb"]), "<= 80",
                        verdict("service_worker_rss_mb", m["worker"]["rss_mb"])))
    e = results.get("embedded")
    if e:
        rows.append(Row(f"embedded mode RSS MB ({e['processes']} process(es))", fmt(e["rss_mb"]), "<= 250",
                        verdict("embedded_rss_mb", e["rss_mb"])))
    doc_rows = documents.rows_of(results)
    if doc_rows and results.get("documents_load"):
        load = results["documents_load"]
        for r in doc_rows:  # latency and rate figures under one load; memory (RSS) is not load-dependent
            if r.status in ("met", "missed") and "RSS" not in r.name and stats_busy(load, cores):
                r.status = "inconclusive"
        doc_rows.append(Row("documents figures measured under", load_note(load)))
    rows += doc_rows
    rows += chain.rows_of(results)
    return rows


def write_results(results: dict, out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{stamp}.json"
    text = json.dumps(results, indent=2, default=str, ensure_ascii=False)
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (~2 minutes)")
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded mode's memory")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    parser.add_argument("--keep-rate-limits", action="store_true",
                        help="leave auth's per-IP login/link limits as shipped (behind the gateway every client "
                             "is the nginx address, so the login and link figures then measure the limiter)")
    parser.add_argument("--only", type=lambda v: [f.strip() for f in v.split(",") if f.strip()], default=list(FIGURES),
                        metavar="FIGURE,…", help="measure only these figures (default all): " + ", ".join(FIGURES))
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; known: {', '.join(FIGURES)}")
    started = time.perf_counter()
    results = run(quick=args.quick, embedded=not args.no_embedded, lift_rate_limits=not args.keep_rate_limits,
                  only=args.only)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    m = results["machine"]
    title = (f"Balcão benchmark {results['date']} — {m['cores']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM"
             + f" — load average {' '.join(m['loadavg_at_start'])} at the start, "
             + f"{' '.join(m.get('loadavg_at_end', ['?']))} at the end" + (" — QUICK" if args.quick else ""))
    print(render_table(rows_of(results), title=title))
    path = write_results(results, args.out)
    print(f"\nJSON: {path} (and {path.parent / 'latest.json'}); total {results['total_seconds']} s")
    return 0

"""Pure helpers of the benchmark: percentiles, summaries, budgets and the printed table.
No I/O here, so the smoke test can check them in milliseconds."""
from __future__ import annotations

import math
from dataclasses import dataclass

# Budgets of issue 5 ("Fast at every size") and issue 9. `kind`: "min" (figure must be >= limit) or "max".
BUDGETS = {
    "login_ratio": ("min", 0.90, "logins/s/core >= 90 % of the raw argon2id verify rate"),
    # issue 11: server CPU per raw argon2id verify / auth workers' CPU per login served
    "login_cpu_ratio": ("min", 0.90, "CPU of a raw argon2id verify / auth web workers' CPU per login >= 0.90"),
    "web_worker_pss_mb": ("max", 60.0, "<= 60 MB PSS per gunicorn worker (preload_app shares the code)"),
    "list_p50_ms": ("max", 15.0, "staff list p50 <= 15 ms (every size)"),
    "list_ratio_100k_1k": ("max", 1.3, "staff list p50 at 100k / p50 at 1k <= 1.3"),
    "list_sql_constant": ("eq", True, "SQL statements per list request constant across sizes"),
    "home_p50_ms": ("max", 20.0, "client home after switching firm p50 <= 20 ms"),
    # issue 11, targets 1-3: the invitation chain (bench/chain.py), against floors of the same run
    "chain_one_floor_ratio": ("max", 3.0, "one invitation: p50 <= 3 × its floor"),
    "chain_burst_rate_ratio": ("min", 0.5, "burst: e-mail rate >= 50 % of raw smtplib over one connection"),
    "chain_burst_p99_s": ("max", 10.0, "burst: p99 activation → e-mail <= 10 s"),
    "chain_scaling_2": ("min", 1.8, "2 notifier workers >= 1.8 × one"),
    "chain_scaling_4": ("min", 3.2, "4 notifier workers >= 3.2 × one"),
    # issue 11, target 5: one link request, POST → new firm's home, against one raw argon2id verify +
    # two raw kombu round trips + the chain's commits timed alone
    "link_floor_ratio": ("max", 2.0, "link request p50 <= 2 × its floor"),
    # issue 9: the Empresas list and a Colaborador's client-user list, against their floors
    "floor_ratio": ("max", 2.0, "page p50 <= 2 × its floor (its SQL run directly + one static file via the gateway)"),
    "size_ratio": ("max", 1.3, "page p50 at the largest size / p50 at 1/100 of it <= 1.3"),
    "service_worker_rss_mb": ("max", 80.0, "<= 80 MB per service worker process"),
    "embedded_rss_mb": ("max", 250.0, "<= 250 MB for the embedded mode"),
    # issue 10: the documents service
    "download_rss_growth_mb": ("max", 10.0, "a 50 MB download grows the documents web worker's RSS by <= 10 MB"),
    "upload_ratio": ("min", 0.70, "1 MB uploads through the gateway >= 70 % of the raw S3 PUT rate"),
    "distribute_ratio": ("min", 0.50, "Distribuir automaticamente >= 50 % of pypdf's text extraction rate"),
}


def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(data[lo])
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(values) -> dict:
    """n, median, p99, min, max of a list of numbers (NaN-free; empty gives NaNs and n=0)."""
    values = list(values)
    return {"n": len(values), "median": percentile(values, 50), "p99": percentile(values, 99),
            "min": min(values) if values else math.nan, "max": max(values) if values else math.nan}


def ms(seconds_list) -> list[float]:
    return [s * 1000.0 for s in seconds_list]


def verdict(budget: str, value) -> str:
    """"met", "missed" or "n/a" (no figure) for a figure against its budget."""
    kind, limit, _text = BUDGETS[budget]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "min":
        return "met" if value >= limit else "missed"
    if kind == "max":
        return "met" if value <= limit else "missed"
    return "met" if value == limit else "missed"


def machine_busy(load: dict | None, cores: int | None = None) -> bool:
    """Whether the machine was too busy during a figure to judge it (issue 11): the load that
    was not the bench's own (runnable tasks of other processes, bench/load.py) above the core
    count. Without that figure, the 1-minute load average (which includes the bench) decides."""
    if not load:
        return False
    cores = cores or load.get("cores") or 1
    other = load.get("other_load")
    if other is None:
        return (load.get("load1_max") or 0.0) > cores
    return other > cores


def load_verdict(budget: str, value, load: dict | None = None, cores: int | None = None) -> str:
    """verdict(), but "inconclusive" instead of "met"/"missed" when the machine was busy."""
    v = verdict(budget, value)
    if v in ("met", "missed") and machine_busy(load, cores):
        return "inconclusive"
    return v


def load_note(load: dict | None) -> str:
    """What the table says of a figure's load: the other load and CPU, the 1-minute load average."""
    if not load:
        return ""
    cpu = load.get("other_cpu_cores")
    return (f"other load {fmt(load.get('other_load'), 1)}"
            + (f", other CPU {fmt(cpu, 1)} cores" if cpu is not None else "")
            + f", load avg {fmt(load.get('load1_max'), 1)}")


def median_of_runs(runs: list):
    """A figure measured several times (issue 11: three): every number is the median of its runs
    (same-shaped dicts; strings, booleans and lists are the first run's)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of_runs([r[k] for r in runs]) for k in first if all(k in r for r in runs)}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    values = [r for r in runs if r is not None and not (isinstance(r, float) and math.isnan(r))]
    if not values:
        return math.nan
    m = percentile(values, 50)
    return int(m) if isinstance(first, int) and m == int(m) else m


@dataclass
class Row:
    name: str
    value: str
    budget: str = ""
    status: str = ""


def fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def render_table(rows: list[Row], *, title: str) -> str:
    """A plain-text table (also valid Markdown) of figure / value / budget / met-or-missed."""
    header = ("figure", "value", "budget", "status")
    cells = [header] + [(r.name, r.value, r.budget, r.status) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]

    def line(c):
        return "| " + " | ".join(c[i].ljust(widths[i]) for i in range(4)) + " |"

    out = [title, "", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    return "\n".join(out)


def windows_rate(timestamps: list[float], *, start: float, end: float, window: float = 1.0) -> list[float]:
    """Completions per second in consecutive windows of `window` seconds between start and end
    (only whole windows), so a rate gets a median and a p99 like a latency."""
    n = int((end - start) // window)
    counts = [0] * n
    for t in timestamps:
        i = int((t - start) // window)
        if 0 <= i < n:
            counts[i] += 1
    return [c / window for c in counts]

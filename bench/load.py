"""How busy the machine was while a figure was measured, not counting the bench's own work.

The bench itself loads the machine (client threads, nginx, the gunicorn workers, PostgreSQL
backends serving its databases): that is the product under test. What makes a figure
untrustworthy is the rest — other people's test runs on a shared machine. `LoadMonitor` samples
/proc every `interval` seconds while a figure runs:

* the 1-minute load average (/proc/loadavg), as `uptime` shows it;
* the **other load**: tasks running or runnable (/proc/stat `procs_running`) minus the bench's
  own running tasks (threads in state R of the bench's processes) — the load average's own
  quantity, without the bench;
* the **other CPU**: CPU time of the whole machine (/proc/stat) minus the CPU time of the bench's
  processes (/proc/<pid>/stat utime + stime), in cores.

The bench's processes are this process and its descendants (the stack, nginx, the argon2 pool)
plus the PostgreSQL backends of the run's databases (their command line names the database,
`balcao_<tag>_…`). RabbitMQ's Erlang VM serves every run on the machine and counts as other.

The verdict (stats.machine_busy) uses the other load; both are recorded with the figure."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def _stat_fields(pid: int | str, task: str | None = None) -> list[str] | None:
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ")"
    head, _, tail = raw.rpartition(")")
    comm = head.partition("(")[2]
    return [comm] + tail.split()  # [comm, state, ppid, ...]; utime, stime at 12, 13


def _machine_cpu() -> tuple[int, int]:
    """(busy jiffies, procs_running) of the whole machine."""
    busy, running = 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal guest guest_nice: idle + iowait are not busy,
            # guest time is already inside user
            busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
        elif line.startswith("procs_running"):
            running = int(line.split()[1])
    return busy, running


class LoadMonitor:
    """`with LoadMonitor(tag) as m: …` then `m.result()`: the machine's load during the block."""

    def __init__(self, db_tag: str | None = None, *, interval: float = 0.5, root: int | None = None):
        self.db_tag = db_tag
        self.interval = interval
        self.root = root or os.getpid()
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: tuple[float, int, int] | None = None
        self._last: tuple[float, int, int] | None = None
        self._own_cpu = 0  # jiffies of the bench's processes since the first sample
        self._prev_cpu: dict[int, int] | None = None

    # -- one sample
    def own_processes(self) -> dict[int, list[str]]:
        """pid → stat fields of the bench's processes (this one's descendants + its PostgreSQL backends)."""
        table: dict[int, list[str]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat_fields(entry)
                if fields:
                    table[int(entry)] = fields
        children: dict[int, list[int]] = {}
        for pid, f in table.items():
            children.setdefault(int(f[2]), []).append(pid)
        own, todo = set(), [self.root]
        while todo:
            pid = todo.pop()
            if pid in own:
                continue
            own.add(pid)
            todo += children.get(pid, [])
        if self.db_tag:
            for pid, f in table.items():
                if pid not in own and f[0] == "postgres":
                    try:
                        if self.db_tag in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                            own.add(pid)
                    except OSError:
                        pass
        return {pid: table[pid] for pid in own if pid in table}

    def sample(self) -> dict:
        own = self.own_processes()
        busy, running = _machine_cpu()
        own_running = 0
        for pid in own:
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for task in tasks:
                f = _stat_fields(pid, task)
                if f and f[1] == "R":
                    own_running += 1
        cpu = {pid: int(f[12]) + int(f[13]) for pid, f in own.items()}
        if self._prev_cpu is not None:
            # a process born since the previous sample (the argon2 pool, a new backend) spent all
            # of its CPU inside the block; one that ended since loses its last interval (small)
            self._own_cpu += sum(c - self._prev_cpu.get(pid, 0) for pid, c in cpu.items())
        self._prev_cpu = cpu
        now = time.monotonic()
        point = (now, busy, self._own_cpu)
        if self._first is None:
            self._first = point
        self._last = point
        s = {"t": now, "load1": float(loadavg()[0]), "running": running, "own_running": own_running,
             "other_running": max(0, running - own_running)}
        self.samples.append(s)
        return s

    # -- the block
    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except OSError:
                pass

    def __enter__(self) -> LoadMonitor:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="bench-load-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.sample()

    def result(self) -> dict:
        return summarize_samples(self.samples, self._first, self._last, cores=os.cpu_count() or 1)


def summarize_samples(samples: list[dict], first, last, *, cores: int) -> dict:
    """The figure's load: 1-min load average at the start, the end and its maximum; the other
    load (mean of the samples) and the other CPU in cores over the whole block. `first`, `last`:
    (monotonic seconds, the machine's busy jiffies, the bench's jiffies so far)."""
    if not samples:
        return {}
    other_cpu = None
    if first and last and last[0] > first[0]:
        seconds = last[0] - first[0]
        own = last[2] - first[2]
        other_cpu = round(max(0.0, (last[1] - first[1] - own) / HZ / seconds), 2)
        other_cpu = min(other_cpu, float(cores))
    return {"samples": len(samples), "cores": cores,
            "load1_start": samples[0]["load1"], "load1_end": samples[-1]["load1"],
            "load1_max": max(s["load1"] for s in samples),
            "other_load": round(sum(s["other_running"] for s in samples) / len(samples), 2),
            "own_load": round(sum(s["own_running"] for s in samples) / len(samples), 2),
            "other_cpu_cores": other_cpu}


def merge(loads: list[dict]) -> dict:
    """One load for a figure measured in several runs: the busiest view of each quantity's mean."""
    loads = [x for x in loads if x]
    if not loads:
        return {}
    n = sum(x["samples"] for x in loads)
    out = {"samples": n, "cores": loads[0]["cores"], "load1_start": loads[0]["load1_start"],
           "load1_end": loads[-1]["load1_end"], "load1_max": max(x["load1_max"] for x in loads),
           "other_load": round(sum(x["other_load"] * x["samples"] for x in loads) / n, 2),
           "own_load": round(sum(x["own_load"] * x["samples"] for x in loads) / n, 2)}
    cpus = [x["other_cpu_cores"] for x in loads if x.get("other_cpu_cores") is not None]
    out["other_cpu_cores"] = round(sum(cpus) / len(cpus), 2) if cpus else None
    return out

"""The process runner of the distributed mode on one host (no containers): for each service a
`balcao web` (gunicorn) and a `balcao worker` process, and nginx as the gateway in front.

    BALCAO_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \\
    BALCAO_AUTH_DATABASE_URL=postgresql://... (and USERS, INVITATIONS, NOTIFIER) \\
    python -m deploy.stack --port 8080

From Python (the end-to-end tests):

    with Stack(env={...}, gateway_port=free_port(), workdir=tmp_path) as stack:
        urlopen(stack.url + "/auth/entrar")
        stack.processes["notifier-worker"].kill(); stack.restart("notifier-worker")
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from services.common.config import SERVICES
from services.common.gateway import PREFIXES

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "gateway" / "balcao.conf.template"
MIME_TYPES = Path("/etc/nginx/mime.types")
# The distributed mode has no dev mailbox: e-mail goes to an SMTP relay (the tests use aiosmtpd).
REQUIRED_ENV = ("BALCAO_BROKER_URL", "BALCAO_SMTP_URL") + tuple(f"BALCAO_{s.upper()}_DATABASE_URL" for s in SERVICES)
STOP_GRACE = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
    return found


def render_server_block(*, gateway_port: int, upstreams: dict[str, str]) -> str:
    """The gateway template with the listen port and the four upstream addresses filled in."""
    values = {"GATEWAY_PORT": str(gateway_port)}
    values.update({f"{svc.upper()}_UPSTREAM": addr for svc, addr in upstreams.items()})
    return string.Template(TEMPLATE.read_text()).safe_substitute(values)


def render_nginx_conf(*, server_block: str, workdir: Path, temp_dir: Path) -> str:
    """A minimal complete nginx.conf around the server block, everything inside `workdir`."""
    logs = workdir / "logs"
    mime = f"    include {MIME_TYPES};\n" if MIME_TYPES.exists() else ""
    temps = "".join(f"    {kind}_temp_path {temp_dir / kind};\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        "worker_processes 1;\n"
        "daemon off;\n"
        f"pid {workdir / 'nginx' / 'nginx.pid'};\n"
        f"error_log {logs / 'nginx-error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"{mime}"
        "    default_type application/octet-stream;\n"
        f"    access_log {logs / 'nginx-access.log'};\n"
        f"{temps}"
        + server_block +
        "\n}\n"
    )


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports (all bound at once while chosen, so none is handed out twice)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class StackError(RuntimeError):
    pass


class Stack:
    """Runs the four services (web + worker each) and the nginx gateway as local processes."""

    def __init__(self, *, env: dict, gateway_port: int, workdir: Path, web_workers: int = 1,
                 worker_processes: dict[str, int] | None = None):
        """`worker_processes`: how many `balcao worker` processes per service (default 1 each);
        the extra ones are named "<svc>-worker-2", "<svc>-worker-3", ... Every web and worker
        process serves its metrics on a loopback port of its own (`metrics_ports[name]`,
        BALCAO_METRICS_BIND), which nginx never routes."""
        missing = [name for name in REQUIRED_ENV if not env.get(name)]
        if missing:
            raise StackError(f"the stack needs {', '.join(missing)} in env")
        self.gateway_port = gateway_port
        self.workdir = Path(workdir).resolve()
        self.web_workers = web_workers
        self.worker_processes = {svc: 1 for svc in SERVICES}
        self.worker_processes.update(worker_processes or {})
        self.metrics_ports: dict[str, int] = {}
        self._process_env: dict[str, dict] = {}
        self.logs_dir = self.workdir / "logs"
        defaults = {
            "BALCAO_VAR_DIR": str(self.workdir / "var"),
            "BALCAO_KEYS_DIR": str(self.workdir / "keys"),
            "BALCAO_PUBLIC_URL": self.url,
        }
        self.env = {**os.environ, **defaults, **{k: str(v) for k, v in env.items()}}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.processes: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, list[str]] = {}
        self._log_files: dict[str, IO[bytes]] = {}
        self._nginx_temp: Path | None = None
        self.web_ports: dict[str, int] = {}

    # ---------------------------------------------------------------- public

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, timeout: float = 60) -> Stack:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare()
            n_workers = sum(self.worker_processes.values())
            needed = 2 * len(SERVICES) + n_workers  # a web port and a metrics port per web, one per worker
            ports = free_ports(needed + 1)
            ports = [p for p in ports if p != self.gateway_port][:needed]
            for svc in SERVICES:
                port = ports.pop()
                self.web_ports[svc] = port
                self.metrics_ports[f"{svc}-web"] = ports.pop()
                # Behind the nginx gateway (one proxy hop): the client's IP from X-Forwarded-For.
                self._process_env[f"{svc}-web"] = {
                    "BALCAO_TRUSTED_PROXIES": "1",
                    "BALCAO_METRICS_BIND": f"127.0.0.1:{self.metrics_ports[f'{svc}-web']}"}
                self._spawn(f"{svc}-web", self._balcao("web", svc, "--bind", f"127.0.0.1:{port}",
                                                       "--workers", str(self.web_workers)))
                for n in range(1, self.worker_processes[svc] + 1):
                    name = f"{svc}-worker" if n == 1 else f"{svc}-worker-{n}"
                    self.metrics_ports[name] = ports.pop()
                    self._process_env[name] = {"BALCAO_METRICS_BIND": f"127.0.0.1:{self.metrics_ports[name]}"}
                    self._spawn(name, self._balcao("worker", svc))
            self._spawn("gateway", self._nginx_command())
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every service's readyz answers 200 through the gateway (or raise with the logs)."""
        deadline = time.monotonic() + timeout
        pending = list(SERVICES)
        last = {}
        while pending:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise StackError(f"{name} exited with {proc.returncode} during start\n{self.logs_tail()}")
            for svc in list(pending):
                status, detail = self._get(f"{self.url}{PREFIXES[svc]}/readyz")
                last[svc] = detail
                if status == 200:
                    pending.remove(svc)
            if pending and time.monotonic() > deadline:
                raise StackError(f"not ready after {timeout:.0f}s: "
                                 + "; ".join(f"{s}: {last[s]}" for s in pending) + "\n" + self.logs_tail())
            if pending:
                time.sleep(0.2)

    def restart(self, name: str) -> subprocess.Popen:
        """Stop (if still running) and start again one process, e.g. "notifier-worker"."""
        proc = self.processes[name]
        self._terminate([proc])
        self._close_log(name)
        return self._spawn(name, self._commands[name])

    def stop(self) -> None:
        """Terminate everything (SIGTERM, then SIGKILL after 10 s). Safe to call twice."""
        self._terminate(list(self.processes.values()))
        for name in list(self._log_files):
            self._close_log(name)
        if self._nginx_temp is not None:
            shutil.rmtree(self._nginx_temp, ignore_errors=True)
            self._nginx_temp = None

    def logs_tail(self, lines: int = 25) -> str:
        out = []
        for path in sorted(self.logs_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals

    def _balcao(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "balcao_cli", *args]

    def _prepare(self) -> None:
        from services.common.keys import ensure_keys
        ensure_keys(Path(self.env["BALCAO_KEYS_DIR"]))
        Path(self.env["BALCAO_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
        with open(self.logs_dir / "migrate.log", "ab") as log:
            done = subprocess.run(self._balcao("migrate"), env=self.env, cwd=REPO_ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=300)
        if done.returncode != 0:
            raise StackError(f"balcao migrate failed ({done.returncode})\n{self.logs_tail(40)}")

    def _nginx_command(self) -> list[str]:
        nginx_dir = self.workdir / "nginx"
        nginx_dir.mkdir(parents=True, exist_ok=True)
        # nginx workers drop to "nobody" when the runner is root: give them a temp dir they can use.
        self._nginx_temp = Path(tempfile.mkdtemp(prefix="balcao-nginx-"))
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self._nginx_temp, nobody.pw_uid, nobody.pw_gid)
        upstreams = {svc: f"127.0.0.1:{port}" for svc, port in self.web_ports.items()}
        conf = render_nginx_conf(server_block=render_server_block(gateway_port=self.gateway_port,
                                                                  upstreams=upstreams),
                                 workdir=self.workdir, temp_dir=self._nginx_temp)
        conf_path = nginx_dir / "nginx.conf"
        conf_path.write_text(conf)
        binary = nginx_binary()
        check = subprocess.run([binary, "-t", "-q", "-p", str(nginx_dir), "-e", str(self.logs_dir / "nginx-error.log"),
                                "-c", str(conf_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise StackError(f"nginx rejected {conf_path}:\n{check.stderr}")
        return [binary, "-p", str(nginx_dir), "-e", str(self.logs_dir / "nginx-error.log"), "-c", str(conf_path)]

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.logs_dir / f"{name}.log", "ab")
        self._log_files[name] = log
        self._commands[name] = command
        env = {**self.env, **self._process_env.get(name, {})}
        proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes[name] = proc
        return proc

    def _terminate(self, procs: list[subprocess.Popen]) -> None:
        running = [p for p in procs if p.poll() is None]
        for p in running:
            try:
                p.send_signal(signal.SIGTERM if not _is_nginx(p) else signal.SIGQUIT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        for p in running:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # the process and whatever it forked
                except ProcessLookupError:
                    pass
                p.wait()

    def _close_log(self, name: str) -> None:
        log = self._log_files.pop(name, None)
        if log is not None:
            log.close()

    @staticmethod
    def _get(url: str) -> tuple[int | None, str]:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return None, str(getattr(exc, "reason", exc))


def _is_nginx(proc: subprocess.Popen) -> bool:
    args = proc.args if isinstance(proc.args, list | tuple) else [proc.args]
    return "nginx" in Path(str(args[0])).name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack",
                                     description="Run Balcão's services as separate processes behind nginx.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BALCAO_HTTP_PORT", "8080")),
                        help="gateway port (default: $BALCAO_HTTP_PORT or 8080)")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "stack",
                        help="logs, keys and nginx files (default: var/stack)")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k.startswith("BALCAO_")}
    try:
        stack = Stack(env=env, gateway_port=args.port, workdir=args.workdir, web_workers=args.web_workers)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stopping = []

    def _stop(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        stack.start()
        print(f"Balcão is running at {stack.url} (logs in {stack.logs_dir}); Ctrl-C stops it.", flush=True)
        while not stopping:
            for name, proc in stack.processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; restarting it", file=sys.stderr, flush=True)
                    stack.restart(name)
            time.sleep(0.5)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

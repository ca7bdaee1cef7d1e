"""A real PgBouncer for tests (Debian's `pgbouncer` package): transaction pooling on a free
loopback port in front of the run's PostgreSQL server, its files in a directory of the test's.

    with pgbouncer_in_front_of(server_url, tmp_path, pool_size=2) as bouncer:
        bouncer.pooled(direct_url)      # the same database, user and password, through the pooler
        bouncer.admin("SHOW POOLS")     # the admin console, as rows of dicts

Clients are trusted (auth_type trust: it listens on 127.0.0.1 only, for the test's processes);
PgBouncer logs into PostgreSQL with the user and password of the server URL, kept in an auth
file of the test's directory (mode 0600). Every database of the server is reachable (the `*`
fallback), each (database, user) pair with a pool of `pool_size` server connections.
Transaction mode as in production: a client's consecutive transactions may run on different
server connections, and nothing session-level survives from one to the next.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from deploy.stack import free_port

ENV_PGBOUNCER = "BALCAO_TEST_PGBOUNCER"


def pgbouncer_requested(environ=None) -> bool:
    """BALCAO_TEST_PGBOUNCER=1: the distributed stacks of this run reach PostgreSQL through PgBouncer."""
    return (os.environ if environ is None else environ).get(ENV_PGBOUNCER) == "1"


def pool_size_for(web_threads: int, worker_processes: int) -> int:
    """The smallest pool of server connections per database that cannot stall one service.

    Some units of work hold a server connection while they wait for a second one: a request whose
    reads (the request's session, its transaction open) are followed by a write (`db().begin()`),
    and the notifier's delivery claim committed inside its consumer's transaction. If every server
    connection of the pool were held by such a waiter, none would ever come free: so one more
    than the service's request threads (gunicorn workers × their threads, all replicas) plus its
    worker processes. The same rule as the README's (Distributed mode › PgBouncer)."""
    return web_threads + worker_processes + 1


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if not found:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer; `make system-deps`)")
    return found


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class PgBouncer:
    def __init__(self, server_url: str, directory: Path, *, pool_size: int = 5, max_client_conn: int = 1000):
        parts = urlsplit(server_url)
        self.server_host = parts.hostname or "127.0.0.1"
        self.server_port = parts.port or 5432
        self.user = unquote(parts.username or "postgres")
        self.password = unquote(parts.password or "")
        self.directory = Path(directory)
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._files: Path | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "pgbouncer.log"

    def config_text(self) -> str:
        assert self._files is not None
        return "\n".join([
            "[databases]",
            f"* = host={self.server_host} port={self.server_port}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {self._files / 'userlist.txt'}",
            f"admin_users = {self.user}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            f"max_client_conn = {self.max_client_conn}",
            "ignore_startup_parameters = extra_float_digits",
            "log_connections = 0",
            "log_disconnections = 0",
            "",
        ])

    def start(self, timeout: float = 20) -> PgBouncer:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Its configuration and auth file in a directory of its own: under root PgBouncer runs as
        # "nobody" (it refuses root), which cannot traverse pytest's private temporary directories.
        self._files = Path(tempfile.mkdtemp(prefix="balcao-pgbouncer-"))
        ini = self._files / "pgbouncer.ini"
        ini.write_text(self.config_text())
        users = self._files / "userlist.txt"
        users.write_text(f"{_quoted(self.user)} {_quoted(self.password)}\n")
        users.chmod(0o600)
        command = [pgbouncer_binary(), "-q", str(ini)]
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            for path in (self._files, ini, users):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command[1:1] = ["-u", "nobody"]
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.admin("SHOW VERSION")
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not answer in {timeout:.0f}s ({exc}):\n{self.log_tail()}") from exc
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)  # immediate shutdown
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)
            self._files = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def pooled(self, direct_url: str) -> str:
        """`direct_url` (a database of the server) through this PgBouncer."""
        from sqlalchemy.engine import make_url
        return make_url(direct_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def admin(self, command: str) -> list[dict]:
        """A command of PgBouncer's admin console (SHOW POOLS, SHOW STATS, SHOW SERVERS, ...) as
        rows of dicts. The console speaks only the simple query protocol."""
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer", user=self.user,
                             autocommit=True, connect_timeout=3, cursor_factory=psycopg.ClientCursor) as conn:
            cur = conn.execute(command)
            if cur.description is None:
                return []
            names = [col.name for col in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def pools(self, database: str) -> list[dict]:
        return [row for row in self.admin("SHOW POOLS") if row["database"] == database]

    def stats(self, database: str) -> dict:
        return next((row for row in self.admin("SHOW STATS") if row["database"] == database), {})

    def servers(self, database: str) -> list[dict]:
        return [row for row in self.admin("SHOW SERVERS") if row["database"] == database]

    def clients(self, database: str) -> list[dict]:
        return [row for row in self.admin("SHOW CLIENTS") if row["database"] == database]


@contextlib.contextmanager
def pgbouncer_in_front_of(server_url: str, directory: Path, **options) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(server_url, directory, **options)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()

"""A private RabbitMQ virtual host per test session: the machine's broker is shared with other
test runs (and benchmarks) that consume the same queue names on "/"."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit, unquote


def _rabbitmqctl(*args: str) -> bool:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    try:
        return subprocess.run([binary, *args], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def private_vhost(url: str):
    """Yields `url` moved to a fresh vhost (created with rabbitmqctl on this machine, deleted
    afterwards); yields `url` unchanged for non-AMQP URLs or when rabbitmqctl cannot do it."""
    if not url.startswith(("amqp://", "pyamqp://")):
        yield url
        return
    parts = urlsplit(url)
    user = unquote(parts.username or "guest")
    name = f"balcao-test-{uuid.uuid4().hex[:10]}"
    if not (_rabbitmqctl("add_vhost", name)
            and _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")):
        yield url
        return
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        _rabbitmqctl("delete_vhost", name)

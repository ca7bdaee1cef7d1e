"""The environment variables Balcão reads, found by walking the code (not a list kept by hand), and
what a web or worker of the distributed mode must be given: shared by test_compose.py and
test_kubernetes.py, so that a variable added to the config loader is checked in both."""
from __future__ import annotations

import ast
from pathlib import Path

from services.common.config import SERVICES

from ._util import ROOT


def _names(node: ast.expr) -> list[str]:
    """The variable name(s) of an `_env(...)` / `os.environ.get(...)` argument: a string, or an
    f-string over the service (f"BALCAO_{svc.upper()}_DATABASE_URL") expanded for every service."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
        if parts.count(None) == 1:
            return ["".join(p if p is not None else svc.upper() for p in parts) for svc in SERVICES]
    raise AssertionError(f"cannot tell which variable {ast.unparse(node)} reads: give it a literal name")


def _is_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def variables_read() -> dict[str, bool]:
    """{name: has a default written at the read} for every variable the product's code reads
    (services/ without its tests, balcao_cli.py): `_env(NAME[, default])` (the config loader),
    `os.environ.get(NAME[, default])`, `os.getenv(...)` and `os.environ[NAME]` (no default)."""
    found: dict[str, bool] = {}
    files = [p for p in (ROOT / "services").rglob("*.py") if "tests" not in p.parts and "migrations" not in p.parts]
    for path in [*files, ROOT / "balcao_cli.py"]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            read: tuple[ast.expr, bool] | None = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Name) and func.id == "_env":
                    read = (node.args[0], len(node.args) > 1)
                elif isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value):
                    read = (node.args[0], len(node.args) > 1)
                elif isinstance(func, ast.Attribute) and func.attr == "getenv":
                    read = (node.args[0], len(node.args) > 1)
            elif (isinstance(node, ast.Subscript) and _is_environ(node.value)
                  and isinstance(node.ctx, ast.Load)):
                read = (node.slice, False)
            if read is not None and isinstance(read[0], ast.Name):
                continue  # a wrapper passing its parameter on (config._env): its callers are walked
            if read is not None:
                for name in _names(read[0]):
                    found[name] = found.get(name, True) and read[1]
    return found


# Variables whose absence the code accepts (it falls back on something), but whose fallback is
# wrong for a web or worker of the distributed mode: every such process must be given them.
# name -> (the roles/services that need it, why)
DISTRIBUTED_REQUIRED = {
    "BALCAO_BROKER_URL": ("every", "the default memory:// broker exists only inside one process"),
    "BALCAO_SMTP_URL": ("every", "`balcao web`/`balcao worker` refuse to start without it"),
    "BALCAO_PUBLIC_URL": ("every", "links in e-mails; the default is http://127.0.0.1"),
    "BALCAO_DEMO": ("every", "1 by default: demonstration data"),
    "BALCAO_METRICS_BIND": ("every", "the default is loopback: no scraper could reach it"),
    "BALCAO_TRUSTED_PROXIES": ("web", "behind the gateway, the client IP is in X-Forwarded-For"),
    "BALCAO_FORWARDED_ALLOW_IPS": ("web", "gunicorn trusts only 127.0.0.1 by default, not the gateway"),
    "BALCAO_DOCUMENTS_S3_ENDPOINT": ("documents", "without it documents go to the pod's local disk"),
    # per service: its own database (the default is a SQLite file inside the process's var dir)
    **{f"BALCAO_{svc.upper()}_DATABASE_URL": (svc, "the default is a SQLite file of the process")
       for svc in SERVICES},
}
# read by boto3, not by our code: the documents service's S3 credentials
DOCUMENTS_S3_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

# Variables whose fallback is a file that `balcao keys` makes in the keys directory (which every
# process mounts, read-only): they need not be set, the keys volume/Secret must hold the file.
KEYS_FILE_FALLBACK = {"BALCAO_SECRET_KEY": "flask-secret", "BALCAO_PII_KEY": "pii.key",
                      "BALCAO_DOCUMENTS_KEY": "documents-master-key"}

# Read without a default written at the read, and fine unset in the distributed mode (None means
# "not configured": no Reply-To, no DKIM, rate limits in the auth database, a temporary directory
# for gunicorn's metrics files, glibc's arenas capped by the code itself).
OPTIONAL_UNSET = {"BALCAO_MAIL_REPLY_TO", "BALCAO_DKIM_SELECTOR", "BALCAO_DKIM_PRIVATE_KEY_FILE",
                  "BALCAO_REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "MALLOC_ARENA_MAX"}


# Read without a default written at the read, falling back on another variable that is set.
# name -> (the variable it falls back on, why that is right)
FALLS_BACK_ON = {
    **{f"BALCAO_{svc.upper()}_DATABASE_LISTEN_URL": (f"BALCAO_{svc.upper()}_DATABASE_URL",
                                                      "the outbox relay's LISTEN; only behind a transaction pooler "
                                                      "(PgBouncer) must it be PostgreSQL's own address")
       for svc in SERVICES},
}


def unclassified() -> set[str]:
    """Variables read without a default that none of the lists above accounts for: a new one
    must be set in docker-compose.yml and deploy/kubernetes (then listed in DISTRIBUTED_REQUIRED),
    or be shown optional (OPTIONAL_UNSET), or fall back on a keys file (KEYS_FILE_FALLBACK) or on
    another variable (FALLS_BACK_ON)."""
    return {name for name, has_default in variables_read().items()
            if not has_default and name not in DISTRIBUTED_REQUIRED and name not in KEYS_FILE_FALLBACK
            and name not in OPTIONAL_UNSET and name not in FALLS_BACK_ON}


def required_for(service: str, role: str) -> set[str]:
    """What the `balcao <role> <service>` process of a deployment must be given."""
    needed = {name for name, (who, _why) in DISTRIBUTED_REQUIRED.items()
              if who == "every" or who == role or (who == service and who in SERVICES)}
    needed -= {f"BALCAO_{s.upper()}_DATABASE_URL" for s in SERVICES if s != service}
    if service == "documents":
        needed |= set(DOCUMENTS_S3_CREDENTIALS)
    return needed


def image_env() -> set[str]:
    """The variables deploy/Dockerfile's runtime stage sets (ENV)."""
    text = (ROOT / "deploy/Dockerfile").read_text().split("AS runtime", 1)[1]
    names: set[str] = set()
    for block in text.split("\nENV ")[1:]:
        for line in block.split("\n"):
            for item in line.strip().rstrip("\\").split():
                if "=" in item:
                    names.add(item.split("=", 1)[0])
            if not line.rstrip().endswith("\\"):
                break
    return names


def keys_dir_files(tmp_dir: Path) -> set[str]:
    """The files `balcao keys` makes in an empty keys directory (as the keys job / the operator
    runs it, BALCAO_SECRET_KEY and BALCAO_PII_KEY unset)."""
    from ._util import balcao
    keys = tmp_dir / "keys"
    result = balcao("keys", env={"BALCAO_VAR_DIR": str(tmp_dir), "BALCAO_KEYS_DIR": str(keys),
                                 "BALCAO_SECRET_KEY": "", "BALCAO_PII_KEY": "", "BALCAO_DOCUMENTS_KEY": ""})
    assert result.returncode == 0, result.stderr
    return {p.name for p in keys.iterdir()}

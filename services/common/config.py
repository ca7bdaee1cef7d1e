"""Configuration from environment variables only, with working embedded defaults.

Every variable is documented in `.env.example` at the top of the repository.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import overload

SERVICES = ("auth", "users", "invitations", "notifier", "documents")


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


@dataclass(frozen=True)
class Config:
    var_dir: Path
    port: int
    public_url: str
    broker_url: str
    smtp_url: str | None
    mail_from: str
    keys_dir: Path
    secret_key: str
    invitation_ttl_days: int
    demo: bool
    database_urls: dict
    # BALCAO_<SVC>_DATABASE_LISTEN_URL: a direct connection to PostgreSQL for the outbox relay's
    # LISTEN (a transaction-mode pooler such as PgBouncer cannot carry LISTEN). Default: the
    # service's database URL, which is right whenever that URL is not a transaction pooler.
    database_listen_urls: dict = dataclasses.field(default_factory=dict)
    mail_reply_to: str | None = None
    dkim_selector: str | None = None
    dkim_private_key_file: str | None = None
    smtp_max_attempts: int = 8
    smtp_retry_base_seconds: float = 5.0
    redis_url: str | None = None
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    resend_cooldown_seconds: int = 60
    pii_key: str | None = None       # base64 32-byte key encrypting CPF/phone at rest
    trusted_proxies: int = 0         # reverse proxies in front (the nginx gateway: 1)
    # Set by `balcao run` only (never from the environment): the embedded mode, and the address
    # its one server binds. Every other entry point (`balcao web`, `balcao worker`) is distributed.
    embedded: bool = False
    bind_host: str = "127.0.0.1"
    metrics_bind: str | None = None  # BALCAO_METRICS_BIND; None: metrics.default_bind of the process
    # BALCAO_FIRM_SIGNUP=open: anyone may sign a firm up (Cadastre seu escritório); else only
    # `balcao create-firm` creates firms and the sign-up pages answer 404
    firm_signup: bool = False
    # Documentos: S3 object storage when BALCAO_DOCUMENTS_S3_ENDPOINT is set (bucket, region; the
    # credentials are boto3's own AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), else the local
    # filesystem under var_dir/documents. Every object is encrypted with a key of its own, wrapped by
    # the master key (BALCAO_DOCUMENTS_KEY, base64 of 32 bytes, or keys_dir/documents-master-key).
    documents_s3_endpoint: str | None = None
    documents_s3_bucket: str = "balcao-documents"
    documents_s3_region: str = "us-east-1"
    documents_key: str | None = None
    documents_max_mb: int = 50           # BALCAO_DOCUMENTS_MAX_MB: the largest file accepted
    documents_digest_minutes: float = 5  # BALCAO_DOCUMENTS_DIGEST_MINUTES: one e-mail per person per window

    def database_url(self, service: str) -> str:
        return self.database_urls[service]

    def database_listen_url(self, service: str) -> str:
        """Where the outbox relay LISTENs: its own direct connection, or the database URL."""
        return self.database_listen_urls.get(service) or self.database_urls[service]

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def dev_mailbox(self) -> bool:
        """E-mails land in the local dev mailbox page (/notificacoes/caixa-de-entrada) instead of an
        SMTP server: only in the embedded mode, only without BALCAO_SMTP_URL, only on a loopback
        bind. Anywhere else the page does not exist (404)."""
        return self.embedded and not self.smtp_url and is_loopback(self.bind_host)

    @property
    def mail_problem(self) -> str | None:
        """Why this process must not run with this e-mail configuration, or None. `balcao web`,
        `balcao worker` and `balcao run` refuse to start with it; /readyz reports it."""
        if self.smtp_url:
            return None
        if not self.embedded:
            return ("BALCAO_SMTP_URL is not set: the distributed mode sends e-mail only through an SMTP relay "
                    "(the dev mailbox exists only in the embedded mode, `balcao run`)")
        if not is_loopback(self.bind_host):
            return (f"BALCAO_SMTP_URL is not set and the server would bind {self.bind_host}, not a loopback address: "
                    "the dev mailbox (which shows every e-mail, reset links included) is only served on 127.0.0.1")
        return None


def is_loopback(host: str) -> bool:
    """Is `host` (an address to bind) reachable only from this machine?"""
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secret_file(path: Path, make) -> str:
    """The secret kept in `path`, created with `make()` the first time (mode 0600). Atomic: of
    several processes starting together, all keep the first one written."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(make())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def _secret_key(keys_dir: Path) -> str:
    return _env("BALCAO_SECRET_KEY") or secret_file(keys_dir / "flask-secret", lambda: secrets.token_urlsafe(48))


def _firm_signup() -> bool:
    """BALCAO_FIRM_SIGNUP: "open" or "closed" (the default). Anything else is refused, so that a
    typo never opens (nor silently keeps closed) what the operator meant."""
    value = _env("BALCAO_FIRM_SIGNUP", "closed").strip().lower()
    if value not in ("open", "closed"):
        raise ValueError(f"BALCAO_FIRM_SIGNUP must be \"open\" or \"closed\", not {value!r}")
    return value == "open"


def load_config() -> Config:
    var_dir = Path(_env("BALCAO_VAR_DIR", "var")).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    port = int(_env("PORT", "8000"))
    database_urls = {
        svc: _env(f"BALCAO_{svc.upper()}_DATABASE_URL", f"sqlite:///{var_dir / (svc + '.sqlite3')}")
        for svc in SERVICES
    }
    # only those set: an unset one follows its service's database URL (database_listen_url)
    database_listen_urls = {svc: url for svc in SERVICES if (url := _env(f"BALCAO_{svc.upper()}_DATABASE_LISTEN_URL"))}
    keys_dir = Path(_env("BALCAO_KEYS_DIR", str(var_dir / "keys"))).resolve()
    return Config(
        var_dir=var_dir,
        port=port,
        public_url=_env("BALCAO_PUBLIC_URL", f"http://127.0.0.1:{port}").rstrip("/"),
        broker_url=_env("BALCAO_BROKER_URL", "memory://"),
        smtp_url=_env("BALCAO_SMTP_URL"),
        mail_from=_env("BALCAO_MAIL_FROM", "nao-responda@balcao.localhost"),
        keys_dir=keys_dir,
        secret_key=_secret_key(keys_dir),
        invitation_ttl_days=int(_env("BALCAO_INVITATION_TTL_DAYS", "7")),
        demo=_env("BALCAO_DEMO", "1") != "0",
        database_urls=database_urls,
        database_listen_urls=database_listen_urls,
        mail_reply_to=_env("BALCAO_MAIL_REPLY_TO"),
        dkim_selector=_env("BALCAO_DKIM_SELECTOR"),
        dkim_private_key_file=_env("BALCAO_DKIM_PRIVATE_KEY_FILE"),
        smtp_max_attempts=int(_env("BALCAO_SMTP_MAX_ATTEMPTS", "8")),
        smtp_retry_base_seconds=float(_env("BALCAO_SMTP_RETRY_BASE_SECONDS", "5")),
        redis_url=_env("BALCAO_REDIS_URL"),
        session_idle_minutes=int(_env("BALCAO_SESSION_IDLE_MINUTES", "30")),
        session_absolute_hours=int(_env("BALCAO_SESSION_ABSOLUTE_HOURS", "12")),
        resend_cooldown_seconds=int(_env("BALCAO_RESEND_COOLDOWN_SECONDS", "60")),
        pii_key=_env("BALCAO_PII_KEY"),
        trusted_proxies=int(_env("BALCAO_TRUSTED_PROXIES", "0")),
        metrics_bind=_env("BALCAO_METRICS_BIND"),
        firm_signup=_firm_signup(),
        documents_s3_endpoint=_env("BALCAO_DOCUMENTS_S3_ENDPOINT"),
        documents_s3_bucket=_env("BALCAO_DOCUMENTS_S3_BUCKET", "balcao-documents"),
        documents_s3_region=_env("BALCAO_DOCUMENTS_S3_REGION", "us-east-1"),
        documents_key=_env("BALCAO_DOCUMENTS_KEY"),
        documents_max_mb=int(_env("BALCAO_DOCUMENTS_MAX_MB", "50")),
        documents_digest_minutes=float(_env("BALCAO_DOCUMENTS_DIGEST_MINUTES", "5")),
    )

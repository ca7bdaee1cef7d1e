"""Failed-attempt counters, locks and per-IP rate limits, shared by every gunicorn worker and
host: Redis when `config.redis_url` is set, else the auth database (atomic upserts).

Locks are keyed to the account AND the client, so that a stranger who guesses cannot lock the
owner out:
- an account (the normalized e-mail, known or not, so that locking reveals nothing) and one
  client — a device auth recognised for this account (flows.client_key), else the IP — are locked
  after LOCK_THRESHOLD (10) consecutive failures: the guesser's IP is locked, the owner on their
  own device or from another network is not;
- the account as a whole is locked, for everyone, after ACCOUNT_LOCK_THRESHOLD (100) consecutive
  failures from any clients: guessing spread over many IPs still stops. NIST SP 800-63B §5.2.2
  allows at most 100 consecutive failed attempts on one account; 100 is that cap, and it is ten
  times the per-client rule, so only guessing from ten or more clients (or IPs) ever reaches it.
Each lock lasts 15 min, doubling on each new lock of the same key (capped at 24 h, never
permanent). A success resets the failures and the growth of the account and of that client.
The owner is told by e-mail when a lock starts: every account-wide lock, and a client's lock
unless a notice already went out in the last LOCK_NOTICE_SECONDS (no flood from many IPs).

Keys hold SHA-256 digests of the account and client, never the e-mail itself.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import clock
from .models import counters

LOCK_THRESHOLD = 10              # consecutive failures of one account from one client
ACCOUNT_LOCK_THRESHOLD = 100     # consecutive failures of one account from all clients (NIST's cap)
LOCK_BASE_SECONDS = 15 * 60
LOCK_CAP_SECONDS = 24 * 3600
COUNTER_TTL_SECONDS = 2 * 24 * 3600   # failures and lock growth are forgotten 2 days after the last
LOCK_NOTICE_SECONDS = 24 * 3600       # at most one client-lock e-mail per account per day

# name -> (max requests, window seconds) per client IP
RATE_LIMITS = {
    "login": (30, 60),
    "link": (30, 60),
    "register": (10, 60),
    "reset": (5, 60),
    "mfa": (30, 60),
    "signup": (5, 60),            # Cadastre seu escritório: forms posted
    "signup_confirm": (30, 60),   # its confirmation (with a login's password when the e-mail has one)
    "failures": (100, 3600),  # failed passwords from one IP, any account
}


def lock_seconds(level: int) -> int:
    """Duration of the (level+1)-th consecutive lock: 15, 30, 60 … minutes, at most 24 h."""
    return int(min(LOCK_BASE_SECONDS * (2 ** min(level, 20)), LOCK_CAP_SECONDS))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def account_key(prefix: str, account: str) -> str:
    return f"{prefix}acct:{_digest(account)}"


def pair_key(prefix: str, account: str, client: str) -> str:
    return f"{prefix}pair:{_digest(account, client)}"


def notice_key(prefix: str, account: str) -> str:
    return f"{prefix}notice:{_digest(account)}"


@dataclass
class Gate:
    """What one request's throttle check found, in one round trip (`Store.gate`)."""
    over_limit: bool            # this request is over the per-IP rate limit of its kind
    ip_blocked: bool            # too many failed passwords/codes from this IP in the window
    locked_until: float | None  # the account is locked for this client (or for everyone) until then
    has_failures: bool          # the account or this client has failures/lock growth a success must reset


@dataclass
class Failure:
    locked_until: float | None  # set when this failure locked the account for this client or everyone
    notify: bool                # e-mail the owner (a lock started and the notice rule allows it)
    everyone: bool = False      # the lock is account-wide (not only this client's)


class DatabaseStore:
    """Counters in the auth database's `auth_counters` table (atomic INSERT … ON CONFLICT)."""

    def __init__(self, database, prefix: str = ""):
        self.db = database
        self.prefix = prefix
        # Every login runs these: built once (building a statement costs more CPU than running it).
        bump = self._insert()(counters).values(key=bindparam("bump_key"), count=1,
                                               expires_at=bindparam("bump_expires_at"), level=0)
        self._bump_stmt = bump.on_conflict_do_update(
            index_elements=[counters.c.key],
            set_={"count": counters.c.count + 1, "expires_at": bump.excluded.expires_at},
        ).returning(counters.c.count)
        self._rows_stmt = (select(counters.c.key, counters.c.count, counters.c.locked_until)
                           .where(counters.c.key.in_(bindparam("keys", expanding=True))))

    def _insert(self):
        return pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert

    def _bump(self, session, key: str, expires_at: float) -> int:
        return session.execute(self._bump_stmt, {"bump_key": key, "bump_expires_at": expires_at}).scalar_one()

    def _sweep(self, session, now: float) -> None:
        """Forget expired counters (a lock's row expires COUNTER_TTL after the lock ends)."""
        session.execute(delete(counters).where(counters.c.expires_at < now))

    def hit(self, name: str, ip: str, limit: int, window: int) -> bool:
        """Count one request of kind `name` from `ip`; False when over the limit."""
        now = clock.timestamp()
        bucket = math.floor(now / window)
        key = f"{self.prefix}rl:{name}:{ip}:{bucket}"
        with self.db.begin() as s:
            count = self._bump(s, key, (bucket + 1) * window)
            if count == 1:  # a new window: sweep the expired counters
                self._sweep(s, now)
        return count <= limit

    def gate(self, name: str, ip: str, account: str | None, client: str | None = None) -> Gate:
        """One transaction before a password/code check: count the request against RATE_LIMITS[name],
        and read the IP's failures and the locks of the account (for everyone, and for `client`)."""
        limit, window = RATE_LIMITS[name]
        f_limit, f_window = RATE_LIMITS["failures"]
        now = clock.timestamp()
        bucket = math.floor(now / window)
        failures_key = f"{self.prefix}rl:failures:{ip}:{math.floor(now / f_window)}"
        lock_keys = ([account_key(self.prefix, account)] + ([pair_key(self.prefix, account, client)] if client else [])
                     if account else [])
        with self.db.begin() as s:
            count = self._bump(s, f"{self.prefix}rl:{name}:{ip}:{bucket}", (bucket + 1) * window)
            if count == 1:  # a new window: sweep the expired counters
                self._sweep(s, now)
            rows = {row.key: row for row in s.execute(self._rows_stmt, {"keys": [failures_key, *lock_keys]})}
        failures = rows.get(failures_key)
        locks = [rows[k] for k in lock_keys if k in rows]
        until = max((r.locked_until for r in locks if r.locked_until and r.locked_until > now), default=None)
        return Gate(over_limit=count > limit, ip_blocked=(failures.count if failures else 0) >= f_limit,
                    locked_until=until, has_failures=bool(locks))

    def count(self, name: str, ip: str, window: int) -> int:
        """Requests of kind `name` from `ip` counted in the current window."""
        key = f"{self.prefix}rl:{name}:{ip}:{math.floor(clock.timestamp() / window)}"
        with self.db.begin() as s:
            return s.execute(select(counters.c.count).where(counters.c.key == key)).scalar_one_or_none() or 0

    def locked_until(self, account: str, client: str) -> float | None:
        """Until when the account is locked for `client` (or for everyone), or None."""
        now = clock.timestamp()
        keys = [account_key(self.prefix, account), pair_key(self.prefix, account, client)]
        with self.db.begin() as s:
            until = s.execute(select(counters.c.locked_until).where(counters.c.key.in_(keys))).scalars().all()
        return max((u for u in until if u and u > now), default=None)

    def _count_failure(self, s, key: str, threshold: int, now: float) -> float | None:
        """One more consecutive failure on `key`; the end of the lock it starts, or None."""
        if self._bump(s, key, now + COUNTER_TTL_SECONDS) < threshold:
            return None
        # Only one concurrent request sees count >= threshold (the row is locked by the upsert).
        level = s.execute(update(counters).where(counters.c.key == key, counters.c.count >= threshold)
                          .values(count=0, level=counters.c.level + 1)
                          .returning(counters.c.level)).scalar_one_or_none()
        if level is None:
            return None
        until = now + lock_seconds(level - 1)
        s.execute(update(counters).where(counters.c.key == key)
                  .values(locked_until=until, expires_at=until + COUNTER_TTL_SECONDS))
        return until

    def _claim_notice(self, s, account: str, now: float) -> bool:
        """True for the first lock notice of the account in LOCK_NOTICE_SECONDS."""
        stmt = self._insert()(counters).values(key=notice_key(self.prefix, account), count=1,
                                               expires_at=now + LOCK_NOTICE_SECONDS, level=0)
        stmt = stmt.on_conflict_do_update(
            index_elements=[counters.c.key], set_={"count": 1, "expires_at": stmt.excluded.expires_at},
            where=counters.c.expires_at < now,
        ).returning(counters.c.key)
        return s.execute(stmt).scalar_one_or_none() is not None

    def failure(self, account: str, client: str, ip: str) -> Failure:
        """A wrong password/code for `account` from `client` (the request came from `ip`): counted
        for the account and this client, for the account, and for the IP (RATE_LIMITS["failures"])."""
        now = clock.timestamp()
        _f_limit, f_window = RATE_LIMITS["failures"]
        f_bucket = math.floor(now / f_window)
        with self.db.begin() as s:
            client_until = self._count_failure(s, pair_key(self.prefix, account, client), LOCK_THRESHOLD, now)
            account_until = self._count_failure(s, account_key(self.prefix, account), ACCOUNT_LOCK_THRESHOLD, now)
            self._bump(s, f"{self.prefix}rl:failures:{ip}:{f_bucket}", (f_bucket + 1) * f_window)
            notify = False
            if client_until or account_until:
                notify = self._claim_notice(s, account, now) or account_until is not None
        return Failure(account_until or client_until, notify, everyone=account_until is not None)

    def success(self, account: str, client: str, session=None) -> None:
        """Reset the failures and lock growth of the account and of this client (and the notice
        interval: the next lock is news); in `session` (the caller's transaction on the auth
        database) when given, else in a transaction of its own."""
        keys = [account_key(self.prefix, account), pair_key(self.prefix, account, client),
                notice_key(self.prefix, account)]
        stmt = delete(counters).where(counters.c.key.in_(keys))
        if session is not None:
            session.execute(stmt)
            return
        with self.db.begin() as s:
            s.execute(stmt)


# KEYS: the account+client counter, the account counter, the notice flag, the IP's failures.
# ARGV: now, client threshold, account threshold, base, counter ttl, cap, notice seconds, IP window.
_FAILURE_LUA = """
local now = tonumber(ARGV[1])
local base, ttl, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function count(key, threshold)
  local locked = tonumber(redis.call('HGET', key, 'locked_until') or '0')
  if locked > now then return 0 end
  local n = redis.call('HINCRBY', key, 'count', 1)
  redis.call('EXPIRE', key, ttl)
  if n < threshold then return 0 end
  local level = tonumber(redis.call('HGET', key, 'level') or '0')
  local dur = math.min(base * (2 ^ math.min(level, 20)), cap)
  local untl = now + dur
  redis.call('HSET', key, 'locked_until', tostring(untl), 'count', '0', 'level', tostring(level + 1))
  redis.call('EXPIRE', key, math.floor(dur + ttl))
  return untl
end
local client_until = count(KEYS[1], tonumber(ARGV[2]))
local account_until = count(KEYS[2], tonumber(ARGV[3]))
redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[8]))
local notify = 0
if client_until > 0 or account_until > 0 then
  local claimed = redis.call('SET', KEYS[3], '1', 'NX', 'EX', tonumber(ARGV[7]))
  if claimed or account_until > 0 then notify = 1 end
end
return {notify, tostring(client_until), tostring(account_until)}
"""


class RedisStore:
    """Counters in Redis: INCR for rate-limit windows, one Lua script per failed attempt."""

    def __init__(self, url: str, prefix: str = "balcao:auth:"):
        import redis
        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._failure = self.redis.register_script(_FAILURE_LUA)

    def hit(self, name: str, ip: str, limit: int, window: int) -> bool:
        bucket = math.floor(clock.timestamp() / window)
        key = f"{self.prefix}rl:{name}:{ip}:{bucket}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window * 2)
        count, _ = pipe.execute()
        return count <= limit

    def gate(self, name: str, ip: str, account: str | None, client: str | None = None) -> Gate:
        """The same as DatabaseStore.gate, in one pipeline."""
        limit, window = RATE_LIMITS[name]
        f_limit, f_window = RATE_LIMITS["failures"]
        now = clock.timestamp()
        key = f"{self.prefix}rl:{name}:{ip}:{math.floor(now / window)}"
        lock_keys = ([account_key(self.prefix, account)] + ([pair_key(self.prefix, account, client)] if client else [])
                     if account else [])
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window * 2)
        pipe.get(f"{self.prefix}rl:failures:{ip}:{math.floor(now / f_window)}")
        for lock_key in lock_keys:
            pipe.hget(lock_key, "locked_until")
        if lock_keys:
            pipe.exists(*lock_keys)
        results = pipe.execute()
        count, failures = results[0], int(results[2]) if results[2] else 0
        until = max((float(v) for v in results[3:3 + len(lock_keys)] if v and float(v) > now), default=None)
        return Gate(over_limit=count > limit, ip_blocked=failures >= f_limit, locked_until=until,
                    has_failures=bool(lock_keys) and bool(results[-1]))

    def count(self, name: str, ip: str, window: int) -> int:
        value = self.redis.get(f"{self.prefix}rl:{name}:{ip}:{math.floor(clock.timestamp() / window)}")
        return int(value) if value else 0

    def locked_until(self, account: str, client: str) -> float | None:
        pipe = self.redis.pipeline()
        pipe.hget(account_key(self.prefix, account), "locked_until")
        pipe.hget(pair_key(self.prefix, account, client), "locked_until")
        now = clock.timestamp()
        return max((float(v) for v in pipe.execute() if v and float(v) > now), default=None)

    def failure(self, account: str, client: str, ip: str) -> Failure:
        now = clock.timestamp()
        _f_limit, f_window = RATE_LIMITS["failures"]
        notify, client_until, account_until = self._failure(
            keys=[pair_key(self.prefix, account, client), account_key(self.prefix, account),
                  notice_key(self.prefix, account), f"{self.prefix}rl:failures:{ip}:{math.floor(now / f_window)}"],
            args=[now, LOCK_THRESHOLD, ACCOUNT_LOCK_THRESHOLD, LOCK_BASE_SECONDS, COUNTER_TTL_SECONDS,
                  LOCK_CAP_SECONDS, LOCK_NOTICE_SECONDS, f_window * 2])
        until = float(account_until) or float(client_until)
        return Failure(until or None, bool(notify), everyone=bool(float(account_until)))

    def success(self, account: str, client: str, session=None) -> None:
        self.redis.delete(account_key(self.prefix, account), pair_key(self.prefix, account, client),
                          notice_key(self.prefix, account))


def make_store(config, database, prefix: str | None = None):
    if config.redis_url:
        return RedisStore(config.redis_url, prefix if prefix is not None else "balcao:auth:")
    return DatabaseStore(database, prefix or "")

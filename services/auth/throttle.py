"""Failed-attempt counters, account locks and per-IP rate limits, shared by every gunicorn
worker and host: Redis when `config.redis_url` is set, else the auth database (atomic upserts).

Account locks: after LOCK_THRESHOLD consecutive failures an account key (the normalized e-mail,
known or not, so that locking reveals nothing) is locked for 15 min, doubling on each new lock
(capped at 24 h, never permanent). A success resets the failures and the growth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import clock
from .models import counters

LOCK_THRESHOLD = 10
LOCK_BASE_SECONDS = 15 * 60
LOCK_CAP_SECONDS = 24 * 3600
COUNTER_TTL_SECONDS = 2 * 24 * 3600

# name -> (max requests, window seconds) per client IP
RATE_LIMITS = {
    "login": (30, 60),
    "link": (30, 60),
    "register": (10, 60),
    "reset": (5, 60),
    "mfa": (30, 60),
    "failures": (100, 3600),  # failed passwords from one IP, any account
}



def lock_seconds(level: int) -> int:
    """Duration of the (level+1)-th consecutive lock: 15, 30, 60 … minutes, at most 24 h."""
    return int(min(LOCK_BASE_SECONDS * (2 ** min(level, 20)), LOCK_CAP_SECONDS))


@dataclass
class Gate:
    """What one request's throttle check found, in one round trip (`Store.gate`)."""
    over_limit: bool            # this request is over the per-IP rate limit of its kind
    ip_blocked: bool            # too many failed passwords/codes from this IP in the window
    locked_until: float | None  # the account is locked until then
    has_failures: bool          # the account has failures/lock growth a success must reset


@dataclass
class Failure:
    locked_until: float | None  # set when the account is (now) locked
    newly_locked: bool          # True for exactly the one failure that started this lock


class DatabaseStore:
    """Counters in the auth database's `auth_counters` table (atomic INSERT … ON CONFLICT)."""

    def __init__(self, database, prefix: str = ""):
        self.db = database
        self.prefix = prefix

    def _insert(self):
        return pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert

    def _bump(self, session, key: str, expires_at: float) -> int:
        stmt = self._insert()(counters).values(key=key, count=1, expires_at=expires_at, level=0)
        stmt = stmt.on_conflict_do_update(
            index_elements=[counters.c.key],
            set_={"count": counters.c.count + 1, "expires_at": stmt.excluded.expires_at},
        ).returning(counters.c.count)
        return session.execute(stmt).scalar_one()

    def hit(self, name: str, ip: str, limit: int, window: int) -> bool:
        """Count one request of kind `name` from `ip`; False when over the limit."""
        now = clock.timestamp()
        bucket = math.floor(now / window)
        key = f"{self.prefix}rl:{name}:{ip}:{bucket}"
        with self.db.begin() as s:
            count = self._bump(s, key, (bucket + 1) * window)
            if count == 1:  # a new window: sweep the expired counters
                s.execute(delete(counters).where(counters.c.expires_at < now, counters.c.locked_until.is_(None)))
        return count <= limit

    def gate(self, name: str, ip: str, account: str | None) -> Gate:
        """One transaction before a password/code check: count the request against RATE_LIMITS[name],
        and read the IP's failures and the account's lock in the same round trip."""
        limit, window = RATE_LIMITS[name]
        f_limit, f_window = RATE_LIMITS["failures"]
        now = clock.timestamp()
        bucket = math.floor(now / window)
        failures_key = f"{self.prefix}rl:failures:{ip}:{math.floor(now / f_window)}"
        account_key = f"{self.prefix}acct:{account}" if account else None
        with self.db.begin() as s:
            count = self._bump(s, f"{self.prefix}rl:{name}:{ip}:{bucket}", (bucket + 1) * window)
            if count == 1:  # a new window: sweep the expired counters
                s.execute(delete(counters).where(counters.c.expires_at < now, counters.c.locked_until.is_(None)))
            keys = [failures_key] + ([account_key] if account_key else [])
            rows = {row.key: row for row in s.execute(
                select(counters.c.key, counters.c.count, counters.c.locked_until).where(counters.c.key.in_(keys)))}
        failures = rows.get(failures_key)
        acct = rows.get(account_key) if account_key else None
        until = acct.locked_until if acct is not None else None
        return Gate(over_limit=count > limit, ip_blocked=(failures.count if failures else 0) >= f_limit,
                    locked_until=until if until and until > now else None, has_failures=acct is not None)

    def count(self, name: str, ip: str, window: int) -> int:
        """Requests of kind `name` from `ip` counted in the current window."""
        key = f"{self.prefix}rl:{name}:{ip}:{math.floor(clock.timestamp() / window)}"
        with self.db.begin() as s:
            return s.execute(select(counters.c.count).where(counters.c.key == key)).scalar_one_or_none() or 0

    def locked_until(self, account: str) -> float | None:
        now = clock.timestamp()
        with self.db.begin() as s:
            until = s.execute(select(counters.c.locked_until)
                              .where(counters.c.key == f"{self.prefix}acct:{account}")).scalar_one_or_none()
        return until if until and until > now else None

    def failure(self, account: str) -> Failure:
        now = clock.timestamp()
        key = f"{self.prefix}acct:{account}"
        with self.db.begin() as s:
            count = self._bump(s, key, now + COUNTER_TTL_SECONDS)
            if count < LOCK_THRESHOLD:
                return Failure(None, False)
            # Only one concurrent request sees count >= threshold (the row is locked by the upsert).
            level = s.execute(update(counters).where(counters.c.key == key, counters.c.count >= LOCK_THRESHOLD)
                              .values(count=0, level=counters.c.level + 1)
                              .returning(counters.c.level)).scalar_one_or_none()
            if level is None:
                return Failure(None, False)
            until = now + lock_seconds(level - 1)
            s.execute(update(counters).where(counters.c.key == key)
                      .values(locked_until=until, expires_at=until + COUNTER_TTL_SECONDS))
        return Failure(until, True)

    def success(self, account: str, session=None) -> None:
        """Reset the account's failures and lock growth; in `session` (the caller's transaction on
        the auth database) when given, else in a transaction of its own."""
        stmt = delete(counters).where(counters.c.key == f"{self.prefix}acct:{account}")
        if session is not None:
            session.execute(stmt)
            return
        with self.db.begin() as s:
            s.execute(stmt)


_FAILURE_LUA = """
local now = tonumber(ARGV[1])
local locked = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
if locked > now then return {0, tostring(locked)} end
local n = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if n < tonumber(ARGV[2]) then return {0, '0'} end
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local dur = math.min(tonumber(ARGV[3]) * (2 ^ math.min(level, 20)), tonumber(ARGV[5]))
local untl = now + dur
redis.call('HSET', KEYS[1], 'locked_until', tostring(untl), 'count', '0', 'level', tostring(level + 1))
redis.call('EXPIRE', KEYS[1], math.floor(dur + tonumber(ARGV[4])))
return {1, tostring(untl)}
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

    def gate(self, name: str, ip: str, account: str | None) -> Gate:
        """The same as DatabaseStore.gate, in one pipeline."""
        limit, window = RATE_LIMITS[name]
        f_limit, f_window = RATE_LIMITS["failures"]
        now = clock.timestamp()
        key = f"{self.prefix}rl:{name}:{ip}:{math.floor(now / window)}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window * 2)
        pipe.get(f"{self.prefix}rl:failures:{ip}:{math.floor(now / f_window)}")
        if account:
            pipe.hget(f"{self.prefix}acct:{account}", "locked_until")
            pipe.exists(f"{self.prefix}acct:{account}")
        results = pipe.execute()
        count, failures = results[0], int(results[2]) if results[2] else 0
        until = float(results[3]) if account and results[3] else None
        return Gate(over_limit=count > limit, ip_blocked=failures >= f_limit,
                    locked_until=until if until and until > now else None,
                    has_failures=bool(account and results[4]))

    def count(self, name: str, ip: str, window: int) -> int:
        value = self.redis.get(f"{self.prefix}rl:{name}:{ip}:{math.floor(clock.timestamp() / window)}")
        return int(value) if value else 0

    def locked_until(self, account: str) -> float | None:
        value = self.redis.hget(f"{self.prefix}acct:{account}", "locked_until")
        until = float(value) if value else None
        return until if until and until > clock.timestamp() else None

    def failure(self, account: str) -> Failure:
        newly, until = self._failure(keys=[f"{self.prefix}acct:{account}"],
                                     args=[clock.timestamp(), LOCK_THRESHOLD, LOCK_BASE_SECONDS,
                                           COUNTER_TTL_SECONDS, LOCK_CAP_SECONDS])
        until = float(until)
        return Failure(until if until else None, bool(newly))

    def success(self, account: str, session=None) -> None:
        self.redis.delete(f"{self.prefix}acct:{account}")


def make_store(config, database, prefix: str | None = None):
    if config.redis_url:
        return RedisStore(config.redis_url, prefix if prefix is not None else "balcao:auth:")
    return DatabaseStore(database, prefix or "")

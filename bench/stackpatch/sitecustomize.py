"""Loaded by the stack's Python processes during `python -m bench` (the bench puts this directory
on their PYTHONPATH). With BALCAO_BENCH_LIFT_RATE_LIMITS=1 it raises auth's per-IP login and link
rate limits, which behind the gateway count every client as the one nginx address (see
bench/README.md): the bench measures the login path itself, not the limiter's 30 per minute."""
import os
import sys

if os.environ.get("BALCAO_BENCH_LIFT_RATE_LIMITS") == "1" and "auth" in sys.argv[1:4]:
    try:
        from services.auth import throttle
    except ImportError:  # a tree without rate limits: nothing to lift
        throttle = None
    if throttle is not None and hasattr(throttle, "RATE_LIMITS"):
        for name in ("login", "link"):
            if name in throttle.RATE_LIMITS:
                throttle.RATE_LIMITS[name] = (10**9, throttle.RATE_LIMITS[name][1])

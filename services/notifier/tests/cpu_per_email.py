"""CPU time the notifier spends per `notification.email_requested` (a measuring script, not a test).

Handles N invitation requests through `handle_message` (as the worker's consumer does) against a
PostgreSQL database and an aiosmtpd server running in a child process (so that its CPU is not
counted), and prints the notifier's CPU (time.process_time) per e-mail. With --profile, the
cProfile (on process time) of the measured run.

    .venv/bin/python -m services.notifier.tests.cpu_per_email \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres [-n 200] [--logo] [--dkim] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path


class _Counter:
    def __init__(self):
        self.received = 0

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        self.received += 1
        return "250 OK"


def _sink(port_queue, stop_event) -> None:
    """An aiosmtpd server (in this child process) that counts what it receives."""
    from aiosmtpd.controller import Controller

    from deploy.stack import free_port
    counter = _Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=free_port())
    controller.start()
    port_queue.put(controller.port)
    stop_event.wait()
    port_queue.put(counter.received)
    controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server (a fresh database is made)")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logo", action="store_true", help="the firm has a logo (attached inline)")
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign the messages")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-out", help="also dump the cProfile stats to this file (pstats)")
    args = parser.parse_args()

    from services.common.config import SERVICES
    from services.common.events import make_envelope
    from services.common.keys import KeyRing
    from services.common.messaging import Outcome, handle_message
    from services.common.runtime import database, migrate
    from services.notifier import consumers, models, services
    from testsupport.helpers import make_test_config
    from testsupport.infra import fresh_postgres_databases

    ctx = multiprocessing.get_context("spawn")
    port_queue, stop_event = ctx.Queue(), ctx.Event()
    sink = ctx.Process(target=_sink, args=(port_queue, stop_event), daemon=True)
    sink.start()
    port = port_queue.get(timeout=30)

    var_dir = Path(tempfile.mkdtemp(prefix="notifier-cpu-"))
    urls = {svc: f"sqlite:///{var_dir / (svc + '.sqlite3')}" for svc in SERVICES}
    urls.update(fresh_postgres_databases(args.database_url, "notifcpu", services=["notifier"]))
    overrides: dict = {}
    if args.dkim:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = var_dir / "dkim.pem"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        overrides = {"dkim_selector": "s1", "dkim_private_key_file": str(key_file)}
    config = make_test_config(var_dir, urls, smtp_url=f"smtp://127.0.0.1:{port}", **overrides)
    migrate("notifier", config)
    db = database("notifier", config)
    keyring = KeyRing(config.keys_dir)

    firm_id = uuid.uuid4()
    logo = None
    if args.logo:
        import base64
        import hashlib
        png = (Path(__file__).parents[1] / "static").glob("*.png")
        data = next(iter(png), None)
        raw = data.read_bytes() if data else b"\x89PNG\r\n\x1a\n" + bytes(2000)
        logo = {"media_type": "image/png", "sha256": hashlib.sha256(raw).hexdigest(),
                "data": base64.b64encode(raw).decode("ascii"), "size": len(raw)}
    with db.begin() as session:
        services.record_firm_profile(session, profile={
            "firm_id": firm_id, "revision": 1, "name": "Contabilidade São João Ltda", "reply_to": None,
            "logo": logo})

    handler = consumers.HANDLERS["notification.email_requested"]

    def envelopes(count: int) -> list[dict]:
        out = []
        for _ in range(count):
            key = f"invitation:{uuid.uuid4()}"
            request = {"template": "invitation", "recipient": f"p{uuid.uuid4().hex[:10]}@example.com",
                       "locale": "pt_BR", "firm_id": str(firm_id),
                       "context": {"firm_name": "Contabilidade São João", "name": "José Conceição",
                                   "expires_on": "05/12/2026"},
                       "sealed": keyring.seal({"link": f"http://balcao.test/convite/{uuid.uuid4().hex}"}),
                       "idempotency_key": key, "reference": key}
            envelope = make_envelope("notification.email_requested", request, correlation_id="cpu")
            envelope["payload"]["firm_id"] = str(firm_id)  # as it travels (JSON)
            out.append(envelope)
        return out

    def run(batch: list[dict]) -> None:
        for envelope in batch:
            outcome = handle_message(db, models.processed, "notifier", handler, envelope, config=config)[0]
            assert outcome == Outcome.HANDLED, outcome

    run(envelopes(args.warmup))
    per_email = []
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    for _ in range(args.rounds):
        batch = envelopes(args.n)
        if profiler:
            profiler.enable()
        t0, w0 = time.process_time(), time.perf_counter()
        run(batch)
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        if profiler:
            profiler.disable()
        per_email.append(cpu / args.n * 1000)
        print(f"{args.n} e-mails: CPU {cpu / args.n * 1000:.2f} ms/e-mail, wall {wall / args.n * 1000:.2f} ms/e-mail")
    print(f"median CPU per e-mail: {statistics.median(per_email):.2f} ms")

    stop_event.set()
    received = port_queue.get(timeout=30)
    sink.join(timeout=30)
    expected = args.warmup + args.rounds * args.n
    print(f"SMTP server received {received} of {expected}")
    with db.begin() as session:
        from sqlalchemy import func, select
        statuses = dict(session.execute(select(models.Delivery.status, func.count()).group_by(
            models.Delivery.status)).all())
    print("deliveries:", statuses)
    db.dispose()
    if profiler:
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()

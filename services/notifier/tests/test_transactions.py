"""Who commits: the notifier's service functions never do (docs/architecture.md); its consumer and
its retry job own the transactions — an attempt committed before SMTP is contacted, the
outcome after — so the delivery guarantees hold with no transaction spanning SMTP."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.common.config import SERVICES
from services.common.keys import KeyRing
from services.common.messaging import utcnow
from services.notifier import services
from services.notifier.models import Delivery, outbox

from .test_delivery import consume, make_due
from .test_notifier import Collector, deliveries, free_port, invitation_request, smtp_server

ROOT = Path(__file__).resolve().parents[3]
TRANSACTION_CALLS = {"begin", "commit", "rollback", "begin_nested"}


def _transaction_calls(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in TRANSACTION_CALLS or name == "database":
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}()")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_service_functions_and_queries_never_open_or_commit_a_transaction(service):
    for module in ("services.py", "queries.py"):
        path = ROOT / "services" / service / module
        if path.exists():
            assert _transaction_calls(path) == [], "the caller owns the transaction"


def test_the_scan_finds_a_commit(tmp_path):
    """Control for the test above."""
    bad = tmp_path / "services.py"
    bad.write_text("def f(db):\n    with db.begin() as s:\n        s.commit()\n")
    assert len(_transaction_calls(bad, tmp_path)) == 2


def _count(db, what) -> int:
    with db.begin() as s:
        return s.execute(select(func.count()).select_from(what)).scalar_one()


def test_a_claim_the_caller_rolls_back_leaves_nothing(config, db):
    request = services.load_request(invitation_request(KeyRing(config.keys_dir)))
    with db.session() as session:
        attempt = services.claim_first_attempt(session, request=request, config=config,
                                               keyring=KeyRing(config.keys_dir))
        assert attempt is not None and attempt.number == 1
        session.rollback()
    assert _count(db, Delivery) == 0


def test_an_outcome_the_caller_rolls_back_leaves_the_attempt_as_claimed(config, db):
    consume(dataclasses.replace(config, smtp_url=f"smtp://127.0.0.1:{free_port()}"), db,
            invitation_request(KeyRing(config.keys_dir)))
    make_due(db)
    events_before = _count(db, outbox)
    with db.session() as session:
        attempt = services.claim_due_attempt(session, now=utcnow(), skip_locked=not db.is_sqlite)
        services.record_outcome(session, attempt.delivery_id, attempts=attempt.number, error=None, config=config)
        session.rollback()
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert _count(db, outbox) == events_before


class _Watching(Collector):
    """An SMTP server that, while the message is being handed over, looks at the database from
    a connection of its own."""

    def __init__(self, db):
        super().__init__()
        self.db, self.seen = db, []

    async def handle_DATA(self, server, session, envelope):
        with self.db.begin() as s:
            self.seen.append(s.execute(select(Delivery.status, Delivery.attempts, Delivery.message_id)).all())
        return await super().handle_DATA(server, session, envelope)


def test_the_attempt_is_committed_before_smtp_and_the_outcome_after(config, db):
    watching = _Watching(db)
    with smtp_server(watching) as url:
        consume(dataclasses.replace(config, smtp_url=url), db, invitation_request(KeyRing(config.keys_dir)))
    [delivery] = deliveries(db)
    # during the SMTP conversation the attempt was already visible to everyone, with its Message-ID
    assert watching.seen == [[("queued", 1, delivery.message_id)]]
    assert (delivery.status, delivery.attempts) == ("sent", 1)

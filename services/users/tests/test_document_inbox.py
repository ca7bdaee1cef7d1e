"""The Escritório selector of the users service's pages shows each firm's unread notices in
Documentos ("Contabilidade Beta (3)") from its projection of the documents service's
`document_inbox.changed`: the newest count wins, so an event delivered late never overwrites it;
the digests' delivery reports (references "documents-digest:…") are not the users service's."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.common.events import make_envelope
from services.common.messaging import Outcome, handle_message
from services.users import consumers, models
from services.users.tests.conftest import login, text_of, users_db

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _deliver(config, event_type: str, payload: dict) -> str:
    envelope = make_envelope(event_type, payload, correlation_id="inbox-test")
    outcome, _ = handle_message(users_db(config), models.processed, "users", consumers.HANDLERS[event_type],
                                envelope, config=config)
    return outcome


def _count(config, w, unread: int, at: datetime) -> str:
    return _deliver(config, "document_inbox.changed", {"firm_id": str(w.beta.id), "identity_id": str(w.carlos.identity_id),
                                                       "unread": unread, "counted_at": at.isoformat()})


def _selector(client, w) -> str:
    html = client.get(f"/e/{w.alfa.slug}/").get_data(as_text=True)
    start = html.index('<select id="firm-select"')
    return text_of(html[start:html.index("</select>", start)])


def test_the_selector_shows_the_newest_count_and_ignores_a_late_one(config, world, browser_client):
    w = world
    login(browser_client, config, w.carlos)
    assert "Contabilidade Beta (" not in _selector(browser_client, w)
    assert _count(config, w, 3, T0) == Outcome.HANDLED
    assert "Contabilidade Beta (3)" in _selector(browser_client, w)
    assert "Contabilidade Alfa (" not in _selector(browser_client, w)
    # counted before the kept one, delivered after it: changes nothing
    assert _count(config, w, 7, T0 - timedelta(seconds=1)) == Outcome.HANDLED
    assert "Contabilidade Beta (3)" in _selector(browser_client, w)
    assert _count(config, w, 2, T0 + timedelta(milliseconds=1)) == Outcome.HANDLED
    assert "Contabilidade Beta (2)" in _selector(browser_client, w)
    assert _count(config, w, 0, T0 + timedelta(seconds=5)) == Outcome.HANDLED
    assert "Contabilidade Beta (" not in _selector(browser_client, w)


def test_another_persons_count_is_not_shown(config, world, browser_client):
    w = world
    _deliver(config, "document_inbox.changed", {"firm_id": str(w.alfa.id), "identity_id": str(uuid.uuid4()),
                                                "unread": 4, "counted_at": T0.isoformat()})
    login(browser_client, config, w.carlos)
    assert "(4)" not in _selector(browser_client, w)


def test_a_digest_delivery_report_is_not_the_users_services(config, world):
    """notification.sent / failed of a documents digest reach the users service too: it ignores them."""
    reference = f"documents-digest:{uuid.uuid4()}"
    sent = {"idempotency_key": reference, "reference": reference, "message_id": "<x@balcao.test>",
            "sent_at": T0.isoformat()}
    failed = {"idempotency_key": reference, "reference": reference, "error": "550 no such user",
              "failed_at": T0.isoformat(), "permanent": True}
    assert _deliver(config, "notification.sent", sent) == Outcome.HANDLED
    assert _deliver(config, "notification.failed", failed) == Outcome.HANDLED

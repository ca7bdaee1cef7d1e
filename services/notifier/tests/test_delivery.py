"""Delivery guarantees of the notifier: retrying with backoff, giving up, the retry loop
(also with two workers at once), crash recovery, Reply-To, DKIM, and the security-notice
templates."""
from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import threading
import uuid
from collections import Counter
from datetime import UTC, timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from services.common.events import EMAIL_TEMPLATES, make_envelope
from services.common.messaging import Outcome, handle_message, utcnow
from services.notifier import consumers, models
from services.notifier.consumers import deliver_email, retry_due_deliveries
from services.notifier.models import Delivery
from services.notifier.rendering import TEMPLATES, render_email
from services.notifier.services import MAX_BACKOFF_SECONDS, backoff_seconds

from .test_notifier import (
    Collector,
    DeferData,
    RefuseRecipient,
    deliver,
    deliveries,
    free_port,
    invitation_request,
    outbox_events,
    smtp_server,
)

HANDLER = consumers.HANDLERS["notification.email_requested"]


def down(config, **overrides):
    """The configuration with an SMTP server that refuses connections (nothing listens)."""
    return dataclasses.replace(config, smtp_url=f"smtp://127.0.0.1:{free_port()}", **overrides)


def consume(config, db, request):
    envelope = make_envelope("notification.email_requested", request, correlation_id="t")
    return handle_message(db, models.processed, "notifier", HANDLER, envelope, config=config)[0]


def make_due(db):
    """Bring every scheduled attempt to now (instead of waiting for the backoff)."""
    with db.begin() as session:
        session.execute(update(Delivery).where(Delivery.next_attempt_at.is_not(None))
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def aware(value):
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def received_message_ids(collector):
    return [email.message_from_bytes(e.original_content, policy=email.policy.default)["Message-ID"]
            for e in collector.envelopes]


# ------------------------------------------------------------------ temporary and permanent failures

def test_temporary_failure_is_handled_and_scheduled_with_backoff(config, db, keyring):
    request = invitation_request(keyring)
    smtp_down = down(config, smtp_retry_base_seconds=30.0)
    before = utcnow()
    assert consume(smtp_down, db, request) == Outcome.HANDLED  # the broker message is done
    after = utcnow()
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.sent_at) == ("retrying", 1, None)
    assert "Connection" in delivery.last_error
    assert before + timedelta(seconds=30) <= aware(delivery.next_attempt_at) <= after + timedelta(seconds=30)
    [failed] = outbox_events(db, "notification.failed")
    assert failed["payload"]["permanent"] is False
    assert failed["payload"]["reference"] == request["reference"]
    assert outbox_events(db, "notification.sent") == []

    # Not due yet: the retry loop leaves it alone.
    assert retry_due_deliveries(smtp_down) == 0
    # Due and still failing: attempt 2, the delay doubles.
    make_due(db)
    before = utcnow()
    assert retry_due_deliveries(smtp_down) == 1
    after = utcnow()
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts) == ("retrying", 2)
    assert before + timedelta(seconds=60) <= aware(delivery.next_attempt_at) <= after + timedelta(seconds=60)
    assert [e["payload"]["permanent"] for e in outbox_events(db, "notification.failed")] == [False, False]


def test_backoff_doubles_and_is_capped_at_one_hour(config):
    cfg = dataclasses.replace(config, smtp_retry_base_seconds=5.0)
    assert [backoff_seconds(cfg, n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_seconds(cfg, 30) == MAX_BACKOFF_SECONDS == 3600


def test_due_retry_sends_with_the_same_message_id(config, db, keyring):
    request = invitation_request(keyring)
    consume(down(config), db, request)
    [first] = deliveries(db)
    collector = Collector()
    with smtp_server(collector) as url:
        up = dataclasses.replace(config, smtp_url=url)
        assert retry_due_deliveries(up) == 0  # the backoff has not passed
        make_due(db)
        assert retry_due_deliveries(up) == 1
        assert retry_due_deliveries(up) == 0  # nothing left
        consume(up, db, request)  # the same request again: already sent, not sent twice
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, None)
    assert delivery.sent_at is not None and delivery.next_attempt_at is None
    assert received_message_ids(collector) == [first.message_id]
    [sent] = outbox_events(db, "notification.sent")
    assert sent["payload"]["message_id"] == first.message_id
    assert sent["payload"]["idempotency_key"] == request["idempotency_key"]


def test_after_max_attempts_the_delivery_fails_for_good(config, db, keyring):
    smtp_down = down(config, smtp_max_attempts=3, smtp_retry_base_seconds=0.0)
    consume(smtp_down, db, invitation_request(keyring))
    for expected in (2, 3):
        make_due(db)
        assert retry_due_deliveries(smtp_down) == 1
        assert deliveries(db)[0].attempts == expected
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    assert [e["payload"]["permanent"] for e in outbox_events(db, "notification.failed")] == [False, False, True]
    make_due(db)
    assert retry_due_deliveries(smtp_down) == 0


def test_permanent_refusal_fails_at_once_and_is_never_retried(config, db, keyring):
    with smtp_server(RefuseRecipient()) as url:
        refusing = dataclasses.replace(config, smtp_url=url)
        assert consume(refusing, db, invitation_request(keyring)) == Outcome.HANDLED
        make_due(db)
        assert retry_due_deliveries(refusing) == 0
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 1, None)
    assert "550" in delivery.last_error
    [failed] = outbox_events(db, "notification.failed")
    assert failed["payload"]["permanent"] is True


def test_4xx_answer_is_temporary(config, db, keyring):
    with smtp_server(DeferData()) as url:
        delivery = deliver(dataclasses.replace(config, smtp_url=url), db, invitation_request(keyring))
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "451" in delivery.last_error


def test_the_error_never_carries_the_smtp_credentials(config, db, keyring):
    port = free_port()
    smtp_down = dataclasses.replace(config, smtp_url=f"smtp://mailer:s3cr3t-pw@127.0.0.1:{port}")
    delivery = deliver(smtp_down, db, invitation_request(keyring))
    assert delivery.status == "retrying"
    [failed] = outbox_events(db, "notification.failed")
    assert "s3cr3t-pw" not in delivery.last_error and "s3cr3t-pw" not in str(failed)


# ------------------------------------------------------------------ crash recovery and concurrency

def test_an_attempt_that_never_reported_back_is_retried_after_its_lease(config, db, keyring):
    request = invitation_request(keyring)
    # A worker committed its attempt, then died before the outcome: the row says so.
    smtp_down = down(config)
    consume(smtp_down, db, request)
    with db.begin() as session:
        session.execute(update(Delivery).values(status="queued", next_attempt_at=utcnow() + timedelta(minutes=1)))
    collector = Collector()
    with smtp_server(collector) as url:
        up = dataclasses.replace(config, smtp_url=url)
        consume(up, db, request)  # the broker redelivers while the lease runs: nobody else sends it
        assert retry_due_deliveries(up) == 0
        assert collector.envelopes == []
        make_due(db)  # the lease ran out
        assert retry_due_deliveries(up) == 1
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert received_message_ids(collector) == [delivery.message_id]


def test_two_workers_retrying_at_once_send_each_delivery_once(config, db, keyring):
    smtp_down = down(config)
    for i in range(20):
        consume(smtp_down, db, invitation_request(keyring, recipient=f"pessoa{i}@example.com"))
    make_due(db)
    collector = Collector()
    with smtp_server(collector) as url:
        up = dataclasses.replace(config, smtp_url=url)
        start = threading.Barrier(2)
        counts, errors = [], []

        def worker():
            try:
                start.wait()
                counts.append(retry_due_deliveries(up))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert sum(counts) == 20
    ids = Counter(received_message_ids(collector))
    assert len(ids) == 20 and set(ids.values()) == {1}
    rows = deliveries(db)
    assert {d.status for d in rows} == {"sent"} and {d.attempts for d in rows} == {2}
    assert set(ids) == {d.message_id for d in rows}
    assert len(outbox_events(db, "notification.sent")) == 20


def test_the_retry_loop_is_offered_to_the_worker():
    assert consumers.PERIODIC == {"notifier.retry_due_deliveries": (1.0, retry_due_deliveries)}


# ------------------------------------------------------------------ headers: Reply-To, DKIM

def _received(collector):
    [envelope] = collector.envelopes
    return envelope.original_content, email.message_from_bytes(envelope.original_content,
                                                               policy=email.policy.default)


def test_reply_to_when_configured(config, db, keyring):
    collector = Collector()
    with smtp_server(collector) as url:
        deliver(dataclasses.replace(config, smtp_url=url, mail_reply_to="atendimento@alfa.example"), db,
                invitation_request(keyring))
        _raw, message = _received(collector)
        assert message["Reply-To"] == "atendimento@alfa.example"
        collector.envelopes.clear()
        deliver(dataclasses.replace(config, smtp_url=url), db, invitation_request(keyring))
        _raw, message = _received(collector)
        assert message["Reply-To"] is None


def test_dkim_signature_verifies_with_the_published_key(config, db, keyring, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    domain = config.mail_from.split("@")[1]
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        if name == f"balcao2026._domainkey.{domain}.".encode():
            return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
        return b""

    collector = Collector()
    with smtp_server(collector) as url:
        deliver(dataclasses.replace(config, smtp_url=url, dkim_selector="balcao2026",
                                    dkim_private_key_file=str(key_file), mail_reply_to="contato@alfa.example"),
                db, invitation_request(keyring))
    raw, message = _received(collector)
    signature = str(message["DKIM-Signature"])
    assert f"d={domain}" in signature and "s=balcao2026" in signature
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    assert asked
    tampered = raw.replace(b"Registre agora", b"Registre ontem", 1)
    assert tampered != raw and not dkim.verify(tampered, dnsfunc=dnsfunc)
    text = message.get_body(("plain",)).get_content()
    assert "Registre agora" in text


def test_without_dkim_configuration_nothing_is_signed(config, db, keyring):
    collector = Collector()
    with smtp_server(collector) as url:
        deliver(dataclasses.replace(config, smtp_url=url), db, invitation_request(keyring))
    _raw, message = _received(collector)
    assert message["DKIM-Signature"] is None


# ------------------------------------------------------------------ security-notice templates

LINK = "http://balcao.test/auth/nao-fui-eu/tok&x=1"

NOTICES = {
    "account_locked": ({"name": "Carlos Souza", "locked_until": "28/11/2026 15:30"},
                       "Sua conta foi bloqueada temporariamente", ["28/11/2026 15:30", "Redefinir senha"]),
    "password_changed": ({"name": "Carlos Souza", "changed_at": "28/11/2026 15:00"},
                         "Sua senha foi alterada", ["28/11/2026 15:00", "Não fui eu"]),
    "mfa_changed": ({"name": "Carlos Souza", "change": "desativada"},
                    "A verificação em duas etapas da sua conta mudou", ["foi", "desativada", "Não fui eu"]),
    "firm_linked": ({"name": "Carlos Souza", "firm_name": "Contabilidade Beta", "linked_at": "28/11/2026 14:00"},
                    "Sua conta foi vinculada a Contabilidade Beta",
                    ["Contabilidade Beta", "28/11/2026 14:00", "Escritório", "Não fui eu"]),
}


def test_every_catalogued_template_exists():
    assert set(TEMPLATES) == set(EMAIL_TEMPLATES)


@pytest.mark.parametrize("template", sorted(NOTICES))
def test_security_notice_renders(template):
    context, subject, phrases = NOTICES[template]
    got_subject, text, html = render_email(template, {**context, "link": LINK})
    assert got_subject == subject
    assert text.startswith("Olá, Carlos Souza!")
    for body in (text, html):
        assert "Carlos Souza" in body
        for phrase in phrases:
            assert phrase in body
        assert "Se o botão não funcionar, copie e cole este endereço no navegador:" in body
    assert LINK in text
    escaped = LINK.replace("&", "&amp;")
    assert html.count(f'href="{escaped}"') == 2
    assert f"<title>{subject}</title>" in html
    assert "{%" not in text and "set subject" not in text


def test_mfa_recovery_codes_notice_reads_well():
    _s, text, html = render_email("mfa_changed", {"name": "Ana", "change": "códigos de recuperação gerados",
                                                  "link": LINK})
    for body in (text, html):
        assert "Foram gerados novos códigos de recuperação" in body
        assert "foi códigos" not in body


def test_notice_escapes_values_in_html():
    _s, _t, html = render_email("firm_linked", {"name": "<i>x</i>", "firm_name": "Beta <script>",
                                                "linked_at": "hoje", "link": LINK})
    assert "<script>" not in html and "Beta &lt;script&gt;" in html and "<i>x</i>" not in html


def test_security_notice_delivered_from_balcao(config, db, keyring):
    key = f"password_changed:{uuid.uuid4()}"
    request = {"template": "password_changed", "recipient": "carlos@example.com", "locale": "pt_BR",
               "context": {"name": "Carlos", "changed_at": "2026-11-28T18:00:00+00:00"},
               "sealed": keyring.seal({"link": LINK}), "idempotency_key": key, "reference": key}
    with db.begin() as session:
        delivery = deliver_email(session, request=request, config=config, keyring=keyring)
    assert (delivery.status, delivery.subject) == ("sent", "Sua senha foi alterada")
    assert delivery.from_header.startswith("Balcão <")
    with db.begin() as session:
        assert session.execute(select(Delivery.template)).scalar_one() == "password_changed"

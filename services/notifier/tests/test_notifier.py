"""Notifier: rendering, MIME headers, idempotent delivery, real SMTP (aiosmtpd), failures,
and the dev mailbox pages."""
from __future__ import annotations

import dataclasses
import email
import email.policy
import uuid
from contextlib import contextmanager
from email.utils import parseaddr

from aiosmtpd.controller import Controller
from sqlalchemy import select
from werkzeug.test import Client
from werkzeug.wrappers import Response

from deploy.stack import free_port
from services.common.events import make_envelope
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database
from services.notifier import consumers, models
from services.notifier.app import create_app
from services.notifier.consumers import deliver_email
from services.notifier.models import Delivery
from services.notifier.rendering import linkify, render_email
from testsupport import count_queries

LINK = "http://balcao.test/convite/abcDEF123_-tokenvalue&x=1"


def invitation_request(keyring, *, key=None, recipient="carlos@example.com", name="Carlos Souza",
                       firm_name="Contabilidade Alfa", link=LINK):
    key = key or f"invitation:{uuid.uuid4()}"
    return {"template": "invitation", "recipient": recipient, "locale": "pt_BR",
            "context": {"firm_name": firm_name, "name": name, "expires_on": "05/12/2026"},
            "sealed": keyring.seal({"link": link}), "idempotency_key": key, "reference": key}


def reset_request(keyring, *, link="http://balcao.test/auth/redefinir-senha/tok"):
    key = f"password_reset:{uuid.uuid4()}"
    return {"template": "password_reset", "recipient": "carlos@example.com", "locale": "pt_BR",
            "context": {"name": "Carlos Souza"}, "sealed": keyring.seal({"link": link}),
            "idempotency_key": key, "reference": key}


def deliver(config, db, request, keyring=None):
    with db.begin() as session:
        return deliver_email(session, request=request, config=config, keyring=keyring or KeyRing(config.keys_dir))


def outbox_events(db, event_type):
    with db.begin() as session:
        rows = session.execute(select(models.outbox.c.envelope).order_by(models.outbox.c.seq)).scalars().all()
    return [e for e in rows if e["type"] == event_type]


def deliveries(db):
    with db.begin() as session:
        return session.execute(select(Delivery).order_by(Delivery.created_at)).scalars().all()


class Collector:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


class RefuseRecipient:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 Mailbox unavailable"


class DeferData:
    async def handle_DATA(self, server, session, envelope):
        return "451 4.3.0 Try again later"


@contextmanager
def smtp_server(handler):
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()


# ------------------------------------------------------------------ rendering

def test_invitation_email_names_firm_and_person_with_button_and_plain_link():
    subject, text, html = render_email("invitation", {"firm_name": "Contabilidade Alfa", "name": "Carlos Souza",
                                                      "link": LINK, "expires_on": "05/12/2026"})
    assert subject == "Contabilidade Alfa convidou você para o Portal do Cliente"
    for body in (text, html):
        assert "Contabilidade Alfa" in body and "Carlos Souza" in body
        assert "Registre agora" in body
        assert "Se o botão não funcionar, copie e cole este endereço no navegador:" in body
        assert "expira em 05/12/2026" in body
        assert "Vincular Contas" in body and "mesma senha" in body
    assert LINK in text
    escaped = LINK.replace("&", "&amp;")
    assert html.count(f'href="{escaped}"') == 2  # the button and the plain link
    assert f">{escaped}</a>" in html
    assert "spam" not in text + html


def test_html_escapes_context_values():
    _s, _t, html = render_email("invitation", {"firm_name": "Alfa <b>&</b>", "name": "<script>x</script>",
                                               "link": LINK})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "expira em alguns dias" in html


def test_password_reset_email():
    link = "http://balcao.test/auth/redefinir-senha/tok"
    subject, text, html = render_email("password_reset", {"name": "Carlos", "link": link})
    assert subject == "Redefinição de senha do Portal do Cliente"
    for body in (text, html):
        assert "Redefinir senha" in body and link in body and "1 hora" in body and "ignore" in body


def test_invitation_code_email_shows_the_code_but_not_in_the_subject():
    subject, text, html = render_email("invitation_code", {"firm_name": "Beta <Contadores>", "name": "Carlos",
                                                           "code": "042917"})
    assert subject == "Código para confirmar seu e-mail no Portal do Cliente de Beta <Contadores>"
    assert "042917" not in subject
    for body in (text, html):
        assert "042917" in body and "10 minutos" in body and "uma vez" in body
        assert "Não compartilhe este código com ninguém, nem com o seu escritório de contabilidade" in body
    assert "Beta &lt;Contadores&gt;" in html and "<Contadores>" not in html


def test_linkify_escapes_everything_but_links():
    out = str(linkify("<b>oi</b> veja http://x.test/a?b=1&c=2. fim"))
    assert out.startswith("&lt;b&gt;oi&lt;/b&gt; veja ")
    assert '<a href="http://x.test/a?b=1&amp;c=2" rel="noopener noreferrer">http://x.test/a?b=1&amp;c=2</a>. fim' in out


# ------------------------------------------------------------------ delivering

def test_dev_mailbox_delivery_is_stored_and_reported_sent(config, db, keyring):
    request = invitation_request(keyring)
    delivery = deliver(config, db, request)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert delivery.subject == "Contabilidade Alfa convidou você para o Portal do Cliente"
    assert LINK in delivery.text_body
    assert parseaddr(delivery.from_header) == ("Contabilidade Alfa via Balcão", config.mail_from)
    assert delivery.message_id.endswith("@" + config.mail_from.split("@")[1] + ">")
    [sent] = outbox_events(db, "notification.sent")
    assert sent["payload"]["idempotency_key"] == request["idempotency_key"]
    assert sent["payload"]["reference"] == request["reference"]
    assert sent["payload"]["message_id"] == delivery.message_id
    assert request["sealed"] not in str(sent) and LINK not in str(sent)


def test_password_reset_is_from_balcao(config, db, keyring):
    delivery = deliver(config, db, reset_request(keyring))
    assert parseaddr(delivery.from_header)[0] == "Balcão"


def test_same_request_twice_is_one_delivery(config, db, keyring):
    request = invitation_request(keyring)
    handler = consumers.HANDLERS["notification.email_requested"]
    outcomes = []
    for _ in range(2):  # two distinct messages carrying the same idempotency key
        envelope = make_envelope("notification.email_requested", request, correlation_id="t")
        outcomes.append(handle_message(db, models.processed, "notifier", handler, envelope, config=config)[0])
    assert outcomes == [Outcome.HANDLED, Outcome.HANDLED]
    assert len(deliveries(db)) == 1
    assert len(outbox_events(db, "notification.sent")) == 1


def test_real_smtp_delivery_with_headers(config, db, keyring):
    collector = Collector()
    with smtp_server(collector) as url:
        smtp_config = dataclasses.replace(config, smtp_url=url)
        request = invitation_request(keyring)
        delivery = deliver(smtp_config, db, request)
        deliver(smtp_config, db, request)  # idempotent: not sent again
    assert delivery.status == "sent"
    [envelope] = collector.envelopes
    assert envelope.rcpt_tos == ["carlos@example.com"]
    assert envelope.mail_from == config.mail_from
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Date"] and message["Message-ID"] == delivery.message_id
    assert parseaddr(str(message["From"])) == ("Contabilidade Alfa via Balcão", config.mail_from)
    assert str(message["Subject"]) == "Contabilidade Alfa convidou você para o Portal do Cliente"
    assert str(message["To"]) == "carlos@example.com"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Registre agora" in text and LINK in text
    assert "Registre agora" in html and "Contabilidade Alfa" in html
    assert len(outbox_events(db, "notification.sent")) == 1


def test_permanent_failure_marks_failed(config, db, keyring):
    with smtp_server(RefuseRecipient()) as url:
        smtp_config = dataclasses.replace(config, smtp_url=url)
        request = invitation_request(keyring)
        delivery = deliver(smtp_config, db, request)
    assert delivery.status == "failed" and "550" in delivery.last_error
    [failed] = outbox_events(db, "notification.failed")
    assert failed["payload"]["permanent"] is True
    assert failed["payload"]["idempotency_key"] == request["idempotency_key"]
    assert "550" in failed["payload"]["error"]
    assert outbox_events(db, "notification.sent") == []


def test_handlers_match_the_catalogue():
    from services.common.events import consumed_by
    assert set(consumers.HANDLERS) == consumed_by("notifier")


# ------------------------------------------------------------------ dev mailbox

def test_mailbox_lists_newest_first(config, db, keyring, browser_client):
    deliver(config, db, invitation_request(keyring, recipient="antigo@example.com", firm_name="Escritório Um"))
    deliver(config, db, invitation_request(keyring, recipient="novo@example.com", firm_name="Escritório Dois"))
    resp = browser_client.get("/notificacoes/caixa-de-entrada")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Caixa de entrada (desenvolvimento)" in html
    assert html.index("novo@example.com") < html.index("antigo@example.com")
    assert "Escritório Dois convidou você para o Portal do Cliente" in html
    [d_old, d_new] = deliveries(db)
    assert f'href="/notificacoes/caixa-de-entrada/{d_new.id}"' in html


def test_mailbox_query_count_does_not_grow(config, db, keyring, browser_client):
    deliver(config, db, invitation_request(keyring))
    with count_queries(config, "notifier") as one:
        assert browser_client.get("/notificacoes/caixa-de-entrada").status_code == 200
    for _ in range(5):
        deliver(config, db, invitation_request(keyring))
    with count_queries(config, "notifier") as six:
        html = browser_client.get("/notificacoes/caixa-de-entrada").get_data(as_text=True)
    assert html.count("/notificacoes/caixa-de-entrada/") == 6
    assert six.count == one.count


def test_mailbox_message_page(config, db, keyring, browser_client):
    delivery = deliver(config, db, invitation_request(keyring, name="Carlos <b>Souza</b>"))
    resp = browser_client.get(f"/notificacoes/caixa-de-entrada/{delivery.id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for label in ("De", "Para", "Assunto", "Data", "Message-ID"):
        assert f"<dt>{label}</dt>" in html
    assert "Contabilidade Alfa via Balcão" in html and delivery.date_header in html
    assert delivery.message_id.replace("<", "&lt;").replace(">", "&gt;") in html
    escaped_link = LINK.replace("&", "&amp;")
    assert f'<a href="{escaped_link}" rel="noopener noreferrer">{escaped_link}</a>' in html
    assert "Carlos &lt;b&gt;Souza&lt;/b&gt;" in html and "<b>Souza</b>" not in html
    assert (f'<iframe class="mail-html" sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" '
            f'src="/notificacoes/caixa-de-entrada/{delivery.id}/html"') in html


def test_mailbox_html_version_has_its_own_headers(config, db, keyring, browser_client):
    delivery = deliver(config, db, invitation_request(keyring))
    resp = browser_client.get(f"/notificacoes/caixa-de-entrada/{delivery.id}/html")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert body == delivery.html_body.replace("<head>", '<head><base target="_blank">', 1) != delivery.html_body
    assert resp.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'")
    assert resp.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert "X-Balcao-Allow-Framing" not in resp.headers
    # Every other page keeps the default framing protection.
    other = browser_client.get(f"/notificacoes/caixa-de-entrada/{delivery.id}")
    assert other.headers.getlist("X-Frame-Options") == ["DENY"]
    assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"]


def test_mailbox_unknown_message_is_404(config, db, browser_client):
    for path in (f"/notificacoes/caixa-de-entrada/{uuid.uuid4()}", "/notificacoes/caixa-de-entrada/nao-e-id",
                 f"/notificacoes/caixa-de-entrada/{uuid.uuid4()}/html"):
        assert browser_client.get(path).status_code == 404


def test_mailbox_is_404_when_smtp_is_configured(config, db, keyring):
    delivery = deliver(config, db, invitation_request(keyring))
    app = create_app(dataclasses.replace(config, smtp_url="smtp://127.0.0.1:1"))
    client = Client(app, Response)
    for path in ("/notificacoes/caixa-de-entrada", f"/notificacoes/caixa-de-entrada/{delivery.id}",
                 f"/notificacoes/caixa-de-entrada/{delivery.id}/html"):
        assert client.get(path).status_code == 404
    assert client.get("/notificacoes/healthz").status_code == 200


def test_invitation_email_from_the_mailbox_opens_the_invitation(config, db, keyring, browser_client):
    """The chain invitations → notifier: the e-mail in the dev mailbox carries a working link."""
    import re
    from datetime import timedelta

    from services.invitations import models as inv_models
    from services.invitations.services import issue_invitation

    inv_db = database("invitations", config)
    with inv_db.begin() as session:
        issue_invitation(session, keyring=keyring, public_url=config.public_url, ttl=timedelta(days=7),
                         firm_id=uuid.uuid4(), firm_name="Contabilidade Alfa", firm_slug="alfa",
                         subject_id=uuid.uuid4(), email="carlos@example.com", name="Carlos Souza",
                         resent=False)
        [envelope] = [e for e in session.execute(select(inv_models.outbox.c.envelope)).scalars()
                      if e["type"] == "notification.email_requested"]
    handler = consumers.HANDLERS["notification.email_requested"]
    assert handle_message(db, models.processed, "notifier", handler, envelope, config=config)[0] == Outcome.HANDLED
    [delivery] = deliveries(db)
    page = browser_client.get(f"/notificacoes/caixa-de-entrada/{delivery.id}").get_data(as_text=True)
    [link] = set(re.findall(r'href="(http://balcao\.test/convite/[^"]+)"', page))
    resp = browser_client.get(link.removeprefix(config.public_url))
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/auth/convite?ticket=")


def test_password_reset_without_a_name_still_renders():
    _subject, text, html = render_email("password_reset", {"link": "http://balcao.test/auth/redefinir-senha/t"})
    assert text.startswith("Olá!") and "Olá!" in html


def test_no_link_sealed_value_or_body_in_logs(config, db, keyring, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    request = invitation_request(keyring)
    deliver(config, db, request)
    retrying = deliver(dataclasses.replace(config, smtp_url=f"smtp://127.0.0.1:{free_port()}"), db,
                       invitation_request(keyring))
    assert retrying.status == "retrying"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "sent as" in logged and "next attempt at" in logged
    assert "/convite/" not in logged and request["sealed"] not in logged and "Registre agora" not in logged

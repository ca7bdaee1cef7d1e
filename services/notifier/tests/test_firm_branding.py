"""E-mails sent on a firm's behalf, as the firm shows itself (Configurações › Escritório): the
notifier keeps firm.profile_changed (name, Reply-To, logo) and applies it to each e-mail whose
request names the firm — the display name in From, the subject and the body, the logo attached
inline (multipart/related, cid:), the firm's Reply-To over the operator's. A retry sends what was
rendered; the dev mailbox shows the logo; a malformed profile is refused by the consumer."""
from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import hashlib
import io
import uuid
from email.utils import parseaddr

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from services.common.events import make_envelope
from services.common.messaging import Outcome, handle_message
from services.notifier import consumers, models
from services.notifier.consumers import retry_due_deliveries

from .test_delivery import consume, down, make_due
from .test_notifier import Collector, deliveries, invitation_request, smtp_server

FIRM_ID = uuid.uuid4()


def logo_png(color=(11, 93, 122, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (200, 60), color).save(out, "PNG")
    return out.getvalue()


def profile(*, revision=1, name="Alfa Contábil", reply_to="atendimento@alfa.com.br", logo: bytes | None = None,
            firm_id=FIRM_ID) -> dict:
    return {"firm_id": str(firm_id), "revision": revision, "name": name, "reply_to": reply_to,
            "logo": None if logo is None else {"media_type": "image/png", "data": base64.b64encode(logo).decode(),
                                               "sha256": hashlib.sha256(logo).hexdigest()}}


def keep_profile(config, db, payload) -> str:
    envelope = make_envelope("firm.profile_changed", payload, correlation_id="t")
    return handle_message(db, models.processed, "notifier", consumers.HANDLERS["firm.profile_changed"], envelope,
                          config=config)[0]


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_the_firms_name_logo_and_reply_to_reach_a_real_message(config, db, keyring):
    logo = logo_png()
    assert keep_profile(config, db, profile(logo=logo)) == Outcome.HANDLED
    # the invitation was issued before the firm changed its name: the request still says the old one
    request = {**invitation_request(keyring, firm_name="Contabilidade Alfa"), "firm_id": str(FIRM_ID)}
    collector = Collector()
    with smtp_server(collector) as url:
        up = dataclasses.replace(config, smtp_url=url, mail_reply_to="operador@balcao.example")
        assert consume(up, db, request) == Outcome.HANDLED
    [delivery] = deliveries(db)
    assert delivery.status == "sent" and delivery.reply_to == "atendimento@alfa.com.br"
    [envelope] = collector.envelopes
    message = parse(envelope.original_content)
    assert parseaddr(str(message["From"])) == ("Alfa Contábil via Balcão", config.mail_from)
    assert str(message["Reply-To"]) == "atendimento@alfa.com.br"
    assert str(message["Subject"]) == "Alfa Contábil convidou você para o Portal do Cliente"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Alfa Contábil" in text and "Contabilidade Alfa" not in text + html
    [image] = [part for part in message.walk() if part.get_content_maintype() == "image"]
    cid = image["Content-ID"].strip("<>")
    assert f'<img src="cid:{cid}" alt="Alfa Contábil"' in html
    assert image.get_content() == logo and image.get_content_type() == "image/png"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]


def test_without_a_firm_or_its_profile_nothing_changes(config, db, keyring):
    keep_profile(config, db, profile(logo=logo_png()))
    collector = Collector()
    with smtp_server(collector) as url:
        up = dataclasses.replace(config, smtp_url=url, mail_reply_to="operador@balcao.example")
        consume(up, db, invitation_request(keyring, firm_name="Contabilidade Alfa"))  # an older producer: no firm_id
        consume(up, db, {**invitation_request(keyring, firm_name="Contabilidade Gama"),
                         "firm_id": str(uuid.uuid4())})  # a firm that never changed its profile
    for envelope, name in zip(collector.envelopes, ("Contabilidade Alfa", "Contabilidade Gama"), strict=True):
        message = parse(envelope.original_content)
        assert parseaddr(str(message["From"]))[0] == f"{name} via Balcão"
        assert str(message["Reply-To"]) == "operador@balcao.example"
        assert message.get_content_type() == "multipart/alternative"
        assert "cid:" not in message.get_body(("html",)).get_content()


def test_a_profile_without_reply_to_keeps_the_operators(config, db, keyring):
    keep_profile(config, db, profile(reply_to=None))
    collector = Collector()
    with smtp_server(collector) as url:
        consume(dataclasses.replace(config, smtp_url=url, mail_reply_to="operador@balcao.example"), db,
                {**invitation_request(keyring), "firm_id": str(FIRM_ID)})
    message = parse(collector.envelopes[0].original_content)
    assert str(message["Reply-To"]) == "operador@balcao.example"
    assert parseaddr(str(message["From"]))[0] == "Alfa Contábil via Balcão"


def test_a_retry_sends_the_logo_the_e_mail_was_rendered_with(config, db, keyring):
    first, second = logo_png((200, 0, 0, 255)), logo_png((0, 200, 0, 255))
    keep_profile(config, db, profile(logo=first))
    consume(down(config), db, {**invitation_request(keyring), "firm_id": str(FIRM_ID)})
    keep_profile(config, db, profile(revision=2, logo=second, name="Alfa Contábil Ltda"))
    collector = Collector()
    with smtp_server(collector) as url:
        make_due(db)
        assert retry_due_deliveries(dataclasses.replace(config, smtp_url=url)) == 1
    message = parse(collector.envelopes[0].original_content)
    [image] = [part for part in message.walk() if part.get_content_maintype() == "image"]
    assert image.get_content() == first
    assert parseaddr(str(message["From"]))[0] == "Alfa Contábil via Balcão"


def test_a_dkim_signature_covers_the_message_with_its_logo(config, db, keyring, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    (tmp_path / "dkim.pem").write_bytes(pem)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    keep_profile(config, db, profile(logo=logo_png()))
    collector = Collector()
    with smtp_server(collector) as url:
        consume(dataclasses.replace(config, smtp_url=url, dkim_selector="s1",
                                    dkim_private_key_file=str(tmp_path / "dkim.pem")), db,
                {**invitation_request(keyring), "firm_id": str(FIRM_ID)})
    raw = collector.envelopes[0].original_content
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(raw, dnsfunc=lambda *_a, **_k: record)
    assert b"multipart/related" in raw and b"reply-to" in str(parse(raw)["DKIM-Signature"]).lower().encode()
    image_line = base64.b64encode(logo_png())[:40]
    assert image_line in raw.replace(b"\r\n", b"")
    tampered = raw.replace(b"Content-Disposition: inline", b"Content-Disposition: attachment", 1)
    assert tampered != raw and not dkim.verify(tampered, dnsfunc=lambda *_a, **_k: record)


def test_the_dev_mailbox_shows_the_logo_and_the_reply_to(config, db, keyring, browser_client):
    logo = logo_png()
    keep_profile(config, db, profile(logo=logo))
    consume(config, db, {**invitation_request(keyring), "firm_id": str(FIRM_ID)})
    [delivery] = deliveries(db)
    page = browser_client.get(f"/notificacoes/caixa-de-entrada/{delivery.id}").get_data(as_text=True)
    assert "<dt>Responder para</dt><dd>atendimento@alfa.com.br</dd>" in page
    html = browser_client.get(f"/notificacoes/caixa-de-entrada/{delivery.id}/html").get_data(as_text=True)
    assert f'src="data:image/png;base64,{base64.b64encode(logo).decode()}"' in html and "cid:" not in html


def test_an_older_profile_arriving_late_changes_nothing(config, db):
    keep_profile(config, db, profile(revision=3, name="Alfa Três"))
    keep_profile(config, db, profile(revision=2, name="Alfa Dois"))
    with db.begin() as s:
        assert s.get(models.FirmProfile, FIRM_ID).name == "Alfa Três"


@pytest.mark.parametrize("change", [
    lambda p: p["logo"].update(sha256="0" * 64),              # not the image it names
    lambda p: p["logo"].update(data="não é base64!"),
    lambda p: p["logo"].update(media_type="image/svg+xml"),
    lambda p: p.update(reply_to="a@b.com\r\nBcc: x@y.com"),
])
def test_the_consumer_refuses_a_malformed_profile(config, db, change):
    from services.common.events import ValidationError, parse_envelope
    payload = profile(logo=logo_png())
    envelope = make_envelope("firm.profile_changed", payload, correlation_id="t")
    change(envelope["payload"])
    with pytest.raises(ValidationError):
        parse_envelope(envelope)
    outcome = handle_message(db, models.processed, "notifier", consumers.HANDLERS["firm.profile_changed"], envelope,
                             config=config)[0]
    assert outcome == Outcome.INVALID
    with db.begin() as s:
        assert s.get(models.FirmProfile, FIRM_ID) is None

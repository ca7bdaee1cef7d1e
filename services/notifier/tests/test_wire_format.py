"""What the notifier writes of an e-mail: the From kept in the delivery (`from_shown`) is the text
the email package shows for the header `from_header` writes; the bytes sent are `build_message`
serialised once (its MIME classes, compat32's header encoder) and sent with sendmail, which a mail
client reads as the delivery and as the same message built with the email package's EmailMessage
API and its SMTP policy."""
from __future__ import annotations

import dataclasses
import email
import email.policy
import uuid
from email.message import EmailMessage

import pytest

from services.notifier import services
from services.notifier.models import Delivery
from services.notifier.rendering import InlineImage, build_message, from_header, from_shown, message_bytes

from .test_notifier import Collector, deliver, deliveries, invitation_request, smtp_server

MAIL_FROM = "nao-responda@balcao.test"

FIRM_NAMES = [
    None, "Contabilidade Alfa", "Contabilidade São João Ltda", "Alfa, Beta & Cia.", 'Escritório "Modelo"',
    "A\\B (matriz) <sede>", "🧾 Contas & Cia 😀", "Nome_com_sublinhado ?=", "Ltda. @ filial",
    "Contabilidade Alfa Beta Gama Delta Epsilon Zeta Eta Theta Iota Kappa Lambda Mu Nu Xi Omicron",
    "Ação Contábil ÇÉÍÓÚ ãõ âêô à", "x" * 120, "São " * 40, "ñ" * 90,
    "Organização Contábil e Assessoria Empresarial São Sebastião do Paraíso Ltda",
    "  Alfa \t Beta  ", "Alfa\\",
]


def _decoded(address_header: str) -> str:
    """An address header as the email package shows it (what the delivery kept, before from_shown)."""
    message = EmailMessage()
    message["From"] = address_header
    return str(message["From"])


@pytest.mark.parametrize("firm_name", FIRM_NAMES)
def test_the_delivery_keeps_the_from_the_email_package_would_show(firm_name):
    assert from_shown(firm_name, MAIL_FROM) == _decoded(from_header(firm_name, MAIL_FROM))


def test_a_name_that_looks_encoded_is_kept_as_written():
    # (the email package decoded the literal "=?...?=" of such a name)
    assert from_shown("=?utf-8?q?falso?= Ltda", MAIL_FROM) == f"=?utf-8?q?falso?= Ltda via Balcão <{MAIL_FROM}>"


# ------------------------------------------------------------------ the bytes sent

LOGO = InlineImage("logo.0123456789abcdef@balcao.test", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 9)
SUBJECTS = ["Contabilidade Alfa convidou você para o Portal do Cliente",
            "ASCII only subject that is long enough to need folding somewhere past the seventy-eighth column ok",
            "😀 " * 20 + "fim", "çãõ" * 40]
BODY = "Olá, José!\n\nLinha com espaço no fim \n.\n.começa com ponto\nFrom the start\n" + "é" * 200 + "\n"


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _params(part) -> list:
    return [(k, v) for k, v in part.get_params() or () if k != "boundary"]


def _same_message(ours: bytes, reference: bytes) -> None:
    """What a mail client reads from `ours` is what it reads from `reference` (the boundaries aside)."""
    assert ours.isascii() and ours.endswith(b"\r\n") and b"\n" not in ours.replace(b"\r\n", b"")
    a, b = _parse(ours), _parse(reference)
    assert list(a.keys()) == list(b.keys())
    for name in b.keys():
        if name != "Content-Type":  # (the boundaries are random)
            assert str(a[name]) == str(b[name]), name
    parts_a, parts_b = list(a.walk()), list(b.walk())
    assert [p.get_content_type() for p in parts_a] == [p.get_content_type() for p in parts_b]
    for pa, pb in zip(parts_a, parts_b, strict=True):
        assert not pa.defects, pa.defects
        assert _params(pa) == _params(pb)
        for name in ("Content-Transfer-Encoding", "Content-Disposition", "Content-ID"):
            assert str(pa[name]) == str(pb[name]), name
        if not pa.is_multipart():
            assert pa.get_payload(decode=True) == pb.get_payload(decode=True)


def _delivery(*, firm_name="Contabilidade São João", subject=SUBJECTS[0], recipient="carlos.souza+x@example.com",
              reply_to=None) -> Delivery:
    return Delivery(id=uuid.uuid4(), recipient=recipient, subject=subject, text_body=BODY,
                    html_body=f"<p>{BODY}</p>\n", from_header=from_shown(firm_name, MAIL_FROM),
                    date_header="Mon, 30 Nov 2026 09:05:07 GMT", message_id="<176.9@balcao.test>", reply_to=reply_to)


def _reference(delivery: Delivery, images=()) -> bytes:
    """The delivery as the email package's EmailMessage API writes it (its SMTP policy)."""
    message = EmailMessage()
    message["From"] = delivery.from_header
    message["To"] = delivery.recipient
    if delivery.reply_to:
        message["Reply-To"] = delivery.reply_to
    message["Subject"] = delivery.subject
    message["Date"] = delivery.date_header
    message["Message-ID"] = delivery.message_id
    message.set_content(delivery.text_body, cte="quoted-printable")
    message.add_alternative(delivery.html_body, subtype="html", cte="quoted-printable")
    html = message.get_body(("html",))
    assert html is not None
    for image in images:
        maintype, subtype = image.media_type.split("/", 1)
        html.add_related(image.data, maintype=maintype, subtype=subtype, cid=f"<{image.cid}>",
                         disposition="inline", filename=f"logo.{subtype}")
    return message.as_bytes(policy=email.policy.SMTP)


def _wire(delivery: Delivery, images=()) -> bytes:
    return message_bytes(build_message(from_=delivery.from_header, to=delivery.recipient, subject=delivery.subject,
                                       date=delivery.date_header, message_id=delivery.message_id,
                                       text=delivery.text_body, html=delivery.html_body, reply_to=delivery.reply_to,
                                       images=images))


@pytest.mark.parametrize("firm_name", FIRM_NAMES)
@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_firm_name_and_subject_reads_as_the_email_message_api_writes_them(firm_name, subject):
    delivery = _delivery(firm_name=firm_name, subject=subject, reply_to=from_shown(firm_name, "contato@alfa.example"))
    data = _wire(delivery)
    _same_message(data, _reference(delivery))
    assert str(_parse(data)["Subject"]) == subject
    assert max(len(line) for line in data.split(b"\r\n")) <= 998  # RFC 5322 2.1.1


@pytest.fixture
def sent(monkeypatch):
    calls: list[dict] = []

    class Connection:
        def send(self, message, *, data=None, envelope_from=None, recipients=None):
            calls.append(dict(message=message, data=data, envelope_from=envelope_from, recipients=recipients))

    monkeypatch.setattr(services, "smtp_connection", lambda url: Connection())
    return calls


@pytest.mark.parametrize("images", [(), (LOGO,)])
@pytest.mark.parametrize("reply_to", [None, "Atendimento São João <atendimento@sao-joao.example>"])
@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_email_package_serialises_the_message_once_and_sendmail_sends_those_bytes(config, sent, subject,
                                                                                       reply_to, images):
    """No smtplib.send_message (its copy of the message, its re-reading of the headers, its second
    flattening): the bytes of build_message + the SMTP policy, to the delivery's recipient."""
    delivery = _delivery(subject=subject, reply_to=reply_to)
    mail_config = dataclasses.replace(config, smtp_url="smtp://127.0.0.1:1", mail_from=MAIL_FROM, mail_reply_to=None)
    assert services.send(delivery, mail_config, images) is None
    [call] = sent
    assert call["data"] is not None, "the message went to send_message to be serialised there"
    assert call["envelope_from"] == MAIL_FROM and call["recipients"] == [delivery.recipient]
    _same_message(call["data"], _reference(delivery, images))
    assert str(_parse(call["data"])["Subject"]) == subject


def test_a_non_ascii_recipient_still_goes_through_send_message(config, sent):
    """An envelope only SMTPUTF8 carries: smtplib.send_message asks the server for it."""
    delivery = _delivery(recipient="josé@example.com")
    assert services.send(delivery, dataclasses.replace(config, smtp_url="smtp://127.0.0.1:1")) is None
    [call] = sent
    assert isinstance(call["message"], EmailMessage) and call["data"] is None
    assert call["message"]["To"] == "josé@example.com"


def test_what_the_smtp_server_receives_decodes_to_the_delivery(config, db, keyring):
    """End to end (consumer → SMTP): the bytes the server received, parsed by the email package, give
    back the delivery's headers and bodies, and read as build_message's."""
    collector = Collector()
    with smtp_server(collector) as url:
        deliver(dataclasses.replace(config, smtp_url=url, mail_reply_to="Atendimento <contato@alfa.example>"), db,
                invitation_request(keyring, firm_name="Contabilidade São João", name="José Conceição"))
    [delivery] = deliveries(db)
    [envelope] = collector.envelopes
    raw = envelope.original_content
    message = _parse(raw)
    assert message["From"] == delivery.from_header == f"Contabilidade São João via Balcão <{config.mail_from}>"
    assert message["Subject"] == delivery.subject and "você" in delivery.subject
    assert message["Message-ID"] == delivery.message_id
    assert message["Reply-To"] == "Atendimento <contato@alfa.example>"
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == delivery.text_body
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == delivery.html_body
    assert envelope.mail_from == config.mail_from and envelope.rcpt_tos == [delivery.recipient]
    delivery.reply_to = "Atendimento <contato@alfa.example>"
    _same_message(raw, _reference(delivery))

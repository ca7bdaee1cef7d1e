"""SMTP the way a real relay asks for it: STARTTLS then AUTH on the submission port, or implicit TLS
(smtps://), against a real aiosmtpd server with a certificate from a test CA. The README promises
`smtp://user:password@host:587?starttls=1` and `smtps://…` work, and that credentials never cross
the wire in clear nor appear in an error."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notifier.services import PermanentDeliveryError, TemporaryDeliveryError, send_smtp

from .test_notifier import Collector, free_port

USER, PASSWORD = "balcao", "s3nha-do-relay"


def _cert(tmp_path):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca_file, cert_file, key_file)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Balcao test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class Relay:
    """What the server saw: messages with whether the session was encrypted and who logged in."""

    def __init__(self):
        self.collector = Collector()
        self.logins_tried: list[tuple[str, bool]] = []  # (mechanism, over TLS?)
        self.sessions = []

    @staticmethod
    def encrypted(server, session) -> bool:
        """STARTTLS done (session.ssl) or implicit TLS (the transport itself)."""
        return session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        self.logins_tried.append((mechanism, self.encrypted(server, session)))
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        # handled=False: aiosmtpd answers a refusal itself (535)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    async def handle_DATA(self, server, session, envelope):
        self.sessions.append({"tls": self.encrypted(server, session), "login": session.auth_data})
        return await self.collector.handle_DATA(server, session, envelope)


@pytest.fixture
def tls(tmp_path, monkeypatch):
    ca_file, cert_file, key_file = _cert(tmp_path)
    # The notifier trusts the system's CAs (ssl.create_default_context); an operator with a private
    # relay CA points SSL_CERT_FILE at it — the test does the same with its own CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def _start(controller):
    controller.start()
    return controller


@pytest.fixture
def starttls_relay(tls):
    relay = Relay()
    controller = _start(Controller(relay, hostname="127.0.0.1", port=free_port(), tls_context=tls,
                                   require_starttls=True, auth_require_tls=True, auth_required=True,
                                   auth_exclude_mechanism=["LOGIN"], authenticator=relay.authenticator))
    yield relay, controller.port
    controller.stop()


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Contabilidade Alfa via Balcão <nao-responda@balcao.test>"
    message["To"] = "carlos@cliente.example"
    message["Subject"] = "Teste"
    message.set_content("Olá")
    return message


def test_starttls_then_auth_delivers_over_an_encrypted_authenticated_session(starttls_relay):
    relay, port = starttls_relay
    send_smtp(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}?starttls=1", _message())
    assert len(relay.collector.envelopes) == 1
    assert relay.sessions == [{"tls": True, "login": USER.encode()}]
    assert relay.logins_tried and all(over_tls for _mech, over_tls in relay.logins_tried)


def test_without_starttls_the_relay_refuses_and_no_credential_crossed_in_clear(starttls_relay):
    relay, port = starttls_relay
    with pytest.raises((TemporaryDeliveryError, PermanentDeliveryError)) as raised:
        send_smtp(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}", _message())
    assert relay.logins_tried == [] and relay.collector.envelopes == []
    assert PASSWORD not in str(raised.value)


def test_a_wrong_relay_password_is_retried_not_a_lost_email(starttls_relay):
    """A bad password is the operator's configuration, not the message's fault: the delivery stays
    retryable (a 535 would otherwise count as a permanent 5xx and drop the e-mail for good)."""
    relay, port = starttls_relay
    with pytest.raises(TemporaryDeliveryError) as raised:
        send_smtp(f"smtp://{USER}:errada@127.0.0.1:{port}?starttls=1", _message())
    assert "authentication failed" in str(raised.value) and "errada" not in str(raised.value)
    assert relay.collector.envelopes == []


def test_an_untrusted_certificate_is_refused(starttls_relay, monkeypatch, tmp_path):
    relay, port = starttls_relay
    (tmp_path / "other").mkdir()
    other_ca, _cert_file, _key = _cert(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    with pytest.raises(TemporaryDeliveryError):
        send_smtp(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}?starttls=1", _message())
    assert relay.logins_tried == [] and relay.collector.envelopes == []


def test_smtps_implicit_tls_with_auth(tls):
    relay = Relay()
    # implicit TLS: the whole connection is encrypted before the greeting (aiosmtpd's
    # auth_require_tls only knows about STARTTLS, hence False here)
    controller = _start(Controller(relay, hostname="127.0.0.1", port=free_port(), ssl_context=tls,
                                   auth_required=True, auth_require_tls=False, authenticator=relay.authenticator))
    try:
        send_smtp(f"smtps://{USER}:{PASSWORD}@127.0.0.1:{controller.port}", _message())
    finally:
        controller.stop()
    assert relay.sessions == [{"tls": True, "login": USER.encode()}]

"""EmailAlerter over STARTTLS and implicit TLS, with a certificate made by the test."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from jixiaoan.alerts.mailer import EmailAlerter
from jixiaoan.config import SmtpSettings

x509 = pytest.importorskip("cryptography.x509", reason="cryptography makes the test certificate")


def make_certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1; returns (cert path, key path)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jixiaoan test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


class Collector:
    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login)
        return AuthResult(success=ok, handled=False if not ok else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def certificate(tmp_path):
    cert, key = make_certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    return server_ctx, ssl.create_default_context(cafile=cert)


def smtp(port: int, security: str) -> SmtpSettings:
    return SmtpSettings(
        server="127.0.0.1", port=port, security=security, user="alice",
        sender="ids@example.org", recipients=["me@example.org"], timeout_s=10.0,
    )


def test_starttls_with_login(certificate):
    server_ctx, client_ctx = certificate
    collector = Collector()
    controller = Controller(
        collector, hostname="127.0.0.1", port=free_port(), tls_context=server_ctx,
        require_starttls=True, authenticator=collector.authenticate,
    )
    controller.start()
    try:
        alerter = EmailAlerter(smtp(controller.port, "starttls"), lambda: "s3cret",
                               ssl_context=client_ctx, start=False)
        ok, text = alerter.send_test()
        assert ok, text
        assert collector.logins == [b"alice"] and len(collector.envelopes) == 1
        # a client that does not trust the certificate refuses to send the password
        untrusting = EmailAlerter(smtp(controller.port, "starttls"), lambda: "s3cret",
                                  start=False)
        ok, text = untrusting.send_test()
        assert not ok and "certificate" in text.lower()
        assert len(collector.envelopes) == 1
    finally:
        controller.stop()


def test_implicit_tls(certificate):
    server_ctx, client_ctx = certificate
    collector = Collector()
    controller = Controller(
        collector, hostname="127.0.0.1", port=free_port(), ssl_context=server_ctx,
        authenticator=collector.authenticate,
        auth_require_tls=False,  # aiosmtpd does not count implicit TLS as TLS for AUTH
    )
    controller.start()
    try:
        alerter = EmailAlerter(smtp(controller.port, "ssl"), lambda: "s3cret",
                               ssl_context=client_ctx, start=False)
        ok, text = alerter.send_test()
        assert ok, text
        assert collector.logins == [b"alice"] and len(collector.envelopes) == 1
    finally:
        controller.stop()

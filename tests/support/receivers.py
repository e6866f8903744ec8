"""Small real servers for the notification channel tests: an HTTP receiver and an SMTP server with STARTTLS.

``HttpReceiver`` (stdlib ``ThreadingHTTPServer`` in a thread) records every request and answers what its
``responder`` says (a status code), optionally after a delay. ``SmtpReceiver`` (aiosmtpd) offers STARTTLS
with a fresh self-signed certificate for 127.0.0.1, AUTH PLAIN/LOGIN checked against one login, records the
messages and logins, and answers the replies a test sets for RCPT and DATA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import EmailMessage
    from pathlib import Path
    from types import TracebackType

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """One request an ``HttpReceiver`` got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpReceiver:
    """A local HTTP server that records requests; ``responder`` picks each answer's status (default 200)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.responder: Callable[[Request], int] = lambda _request: 200
        self.delay_s = 0.0
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = Request("POST", self.path, headers, self.rfile.read(length))
                receiver.requests.append(request)
                status = receiver.responder(request)
                if receiver.delay_s:
                    receiver._released.wait(receiver.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                """Quiet."""

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                """A client that gave up (timeout tests) is expected; stay quiet."""

        self._server = Server((HOST, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="http-receiver",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The server's base URL (``http://127.0.0.1:<port>``)."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and its key, as files and as a client trust context."""

    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this certificate (host name checked: the certificate names 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.certfile))


def self_signed(directory: Path) -> TlsFiles:
    """Write a fresh self-signed P-256 certificate for 127.0.0.1 and localhost into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dispenser-hub test SMTP")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(directory / "smtp.crt", directory / "smtp.key")
    files.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@dataclass
class SmtpHandler:
    """aiosmtpd handler: records messages; ``rcpt_reply``/``data_reply`` override the 250 answers."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    rcpt_reply: str = "250 OK"
    data_reply: str = "250 Message accepted for delivery"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _options: list[str]
    ) -> str:
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, _server: SMTP, _session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply.startswith("250"):
            content = envelope.original_content or b""
            message: EmailMessage = message_from_bytes(content, policy=policy.default)
            self.messages.append((envelope, message))
        return self.data_reply


class _Controller(Controller):
    """aiosmtpd's threaded controller on a free port (port 0 resolved before the self-test connects)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpReceiver:
    """An SMTP server on 127.0.0.1: STARTTLS (unless ``tls`` is None), AUTH checked against ``login``.

    ``logins`` records every AUTH attempt with whether TLS was up at the time: the proof of what a client
    sent in clear.
    """

    def __init__(self, tls: TlsFiles | None, *, login: tuple[str, str] = ("hub", "s3cret-password")) -> None:
        self.handler = SmtpHandler()
        self.login = login
        self.logins: list[tuple[str, bool]] = []
        self._controller = _Controller(
            self.handler,
            hostname=HOST,
            port=0,
            server_hostname="smtp.test",
            tls_context=None if tls is None else tls.server_context(),
            authenticator=self._authenticate,
            auth_require_tls=False,  # the client must refuse by itself; the server would accept
        )

    def _authenticate(
        self, _server: SMTP, session: Session, _envelope: Envelope, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        username = auth_data.login.decode()
        self.logins.append((username, session.ssl is not None))
        ok = (username, auth_data.password.decode()) == self.login
        return AuthResult(success=ok, handled=False)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()

"""E-mail over SMTP (submission, port 587 usually) with STARTTLS, using the standard library's ``smtplib``.

- **TLS before anything else**: with ``starttls=True`` (the default) the mailer says EHLO, requires the
  server to offer STARTTLS and upgrades with ``ssl_context`` (default: the system's trust store, host name
  checked) before AUTH, MAIL or the message. A server that does not offer STARTTLS gets nothing: a permanent
  failure, since a downgrade must not leak the credentials or the message. Credentials without STARTTLS are
  refused when the mailer is built (``ValueError``); ``starttls=False`` is for a local relay without login.
- **Message-ID from the key**: ``<hex(SHA-256(key))[:32].notify@<sender's domain>>``, the same for every
  attempt of one notification, so a resend is recognisable (mail clients thread or drop duplicates).
- **Classification**: SMTP 4xx replies (greylisting, a full mailbox, a rate limit), a dropped connection,
  a timeout or a refused connection: retry. 5xx replies (unknown recipient, refused login, policy), an
  untrusted server certificate, no STARTTLS, an address or subject of the wrong shape: permanent. The
  ``detail`` has the SMTP stage and code, never the server's text (it often echoes the address).

The text is sent as ``text/plain; charset=utf-8``; it comes from ``notices.render_email``.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Final

from dispenser_hub.ports import Delivery

ADDRESS: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)
"""An ASCII mailbox ``local@domain``: no display name, comments, quoting or spaces."""
SMTP_TRANSIENT: Final = range(400, 500)


def message_id(key: str, domain: str) -> str:
    """The ``Message-ID`` of the notification ``key``: the same for every attempt."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}.notify@{domain}>"


class SmtpMailer:
    """``NotificationChannel`` ``email``: one SMTP session per message (see the module docstring).

    Args:
        host: The SMTP server (submission service of the municipality's mail system).
        port: Its port (587 for submission with STARTTLS).
        sender: The ``From`` and envelope sender, ``name@domain``.
        username: Login name; with ``password``, AUTH after STARTTLS. ``None``: no login.
        password: Login password (from a ``SecretStr`` setting).
        starttls: Upgrade to TLS before anything else (required when logging in).
        ssl_context: Trust and TLS settings; default: ``ssl.create_default_context()``.
        timeout_s: Timeout of the connection and of each reply, in seconds.
        local_hostname: The name said in EHLO; default: this host's fully qualified name.
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10,
        local_hostname: str | None = None,
    ) -> None:
        if not ADDRESS.fullmatch(sender):
            raise ValueError("the sender must be a plain name@domain address")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if username is not None and not starttls:
            raise ValueError("refusing to send SMTP credentials without STARTTLS")
        self._host = host
        self._port = port
        self._sender = sender
        self._login = None if username is None or password is None else (username, password)
        self._starttls = starttls
        self._context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._timeout_s = timeout_s
        self._local_hostname = local_hostname
        self._domain = sender.rpartition("@")[2]

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._host!r}, port={self._port}, starttls={self._starttls})"

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:
        """Mail ``text`` with ``subject`` to ``address``; the outcome as a ``Delivery``."""
        if not ADDRESS.fullmatch(address):
            return Delivery(ok=False, retry=False, detail="address is not a plain name@domain")
        try:
            message = self._message(address, subject, text, key)
        except ValueError:  # a line break in the subject (header injection) or the like
            return Delivery(ok=False, retry=False, detail="subject or key unusable in a header")
        stage = ["connect"]  # where the session got to, for the detail
        try:
            self._session(address, message, stage)
        except (OSError, smtplib.SMTPException) as error:
            return _failure(stage[-1], error)
        return Delivery(ok=True, detail="accepted")

    def _session(self, address: str, message: EmailMessage, stage: list[str]) -> None:
        with smtplib.SMTP(
            self._host, self._port, local_hostname=self._local_hostname, timeout=self._timeout_s
        ) as smtp:
            stage.append("ehlo")
            smtp.ehlo()
            if self._starttls:
                stage.append("starttls")
                if not smtp.has_extn("starttls"):
                    raise StartTlsMissingError
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if self._login is not None:
                stage.append("auth")
                smtp.login(*self._login)
            stage.append("send")
            smtp.send_message(message, from_addr=self._sender, to_addrs=[address])

    def _message(self, address: str, subject: str, text: str, key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = address
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id(key, self._domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text, charset="utf-8")
        return message


class StartTlsMissingError(smtplib.SMTPException):
    """The server does not offer STARTTLS, so nothing (no login, no message) may be sent."""


def _failure(stage: str, error: OSError | smtplib.SMTPException) -> Delivery:
    """Classify a failed session (see the module docstring); the detail never has the server's text."""
    code: int | None = None
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code = next((code for code, _ in error.recipients.values()), 550)
    elif isinstance(error, smtplib.SMTPResponseException):  # sender refused, data, auth, helo errors
        code = error.smtp_code
    if code is not None:
        return Delivery(ok=False, retry=code in SMTP_TRANSIENT, detail=f"{stage}: SMTP {code}")
    if isinstance(error, StartTlsMissingError):
        return Delivery(ok=False, retry=False, detail=f"{stage}: server does not offer STARTTLS")
    if isinstance(error, ssl.SSLCertVerificationError):
        return Delivery(ok=False, retry=False, detail=f"{stage}: server certificate not trusted")
    # timeouts, refused or dropped connections (SMTPServerDisconnected), other TLS errors
    return Delivery(ok=False, retry=True, detail=f"{stage}: {type(error).__name__}")

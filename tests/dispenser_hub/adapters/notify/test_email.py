"""SmtpMailer against a real aiosmtpd server on 127.0.0.1 with STARTTLS and AUTH."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from dispenser_hub.adapters.notify.email import SmtpMailer, message_id
from dispenser_hub.ports import Delivery, NotificationChannel
from tests.support.receivers import SmtpReceiver, TlsFiles, self_signed

if TYPE_CHECKING:
    from collections.abc import Iterator

ADDRESS = "vakt.fana@bergen.example"
SUBJECT = "RØD alarm: dispenser D-17"
PASSWORD = "s3cret-password"  # noqa: S105 - the test server's login, valid nowhere else
WRONG_PASSWORD = "wrong-password"  # noqa: S105 - a test value
TEXT = "Dispenser D-17 melder feil.\nKvitter: https://hub.example/ack/abc\n"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return self_signed(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def server(tls: TlsFiles) -> Iterator[SmtpReceiver]:
    with SmtpReceiver(tls) as receiver:
        yield receiver


def mailer(server: SmtpReceiver, tls: TlsFiles, **options: object) -> SmtpMailer:
    settings: dict[str, object] = {
        "sender": "hub@bergen.example",
        "username": "hub",
        "password": PASSWORD,
        "ssl_context": tls.client_context(),
        "timeout_s": 2,
        "local_hostname": "hub.test",
    }
    settings.update(options)
    return SmtpMailer("127.0.0.1", server.port, **settings)  # type: ignore[arg-type]


def test_delivers_over_starttls_after_login(server: SmtpReceiver, tls: TlsFiles) -> None:
    channel: NotificationChannel = mailer(server, tls)
    delivery = channel.send(ADDRESS, SUBJECT, TEXT, key="alarm:7/step:1/contact:3")
    assert delivery == Delivery(ok=True, detail="accepted")
    assert channel.name == "email"
    assert server.logins == [("hub", True)]
    [(envelope, message)] = server.handler.messages
    assert envelope.mail_from == "hub@bergen.example"
    assert envelope.rcpt_tos == [ADDRESS]
    assert message["Subject"] == SUBJECT
    assert message["To"] == ADDRESS
    assert message["From"] == "hub@bergen.example"
    assert message["Message-ID"] == message_id("alarm:7/step:1/contact:3", "bergen.example")
    assert message.get_content().replace("\r\n", "\n") == TEXT  # CRLF on the wire


def test_a_resend_has_the_same_message_id_and_another_key_another(
    server: SmtpReceiver, tls: TlsFiles
) -> None:
    channel = mailer(server, tls)
    for key in ("alarm:7/step:1", "alarm:7/step:1", "alarm:7/step:2"):
        assert channel.send(ADDRESS, SUBJECT, TEXT, key=key).ok
    first, again, other = (message["Message-ID"] for _, message in server.handler.messages)
    assert first == again != other
    assert first.startswith("<")
    assert first.endswith("@bergen.example>")


def test_without_login_and_without_starttls_to_a_local_relay(tls: TlsFiles) -> None:
    with SmtpReceiver(None) as relay:
        channel = mailer(relay, tls, username=None, password=None, starttls=False)
        assert channel.send(ADDRESS, SUBJECT, TEXT, key="k1").ok
        assert relay.logins == []
        assert len(relay.handler.messages) == 1


def test_credentials_are_never_sent_to_a_server_without_starttls(tls: TlsFiles) -> None:
    with SmtpReceiver(None) as plain:
        delivery = mailer(plain, tls).send(ADDRESS, SUBJECT, TEXT, key="k1")
        assert delivery == Delivery(ok=False, retry=False, detail="starttls: server does not offer STARTTLS")
        assert plain.logins == []
        assert plain.handler.messages == []


def test_credentials_without_starttls_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="STARTTLS"):
        SmtpMailer(
            "127.0.0.1", 25, sender="hub@bergen.example", username="hub", password=PASSWORD, starttls=False
        )


def test_an_untrusted_certificate_fails_for_good_before_login(server: SmtpReceiver, tls: TlsFiles) -> None:
    import ssl  # noqa: PLC0415 - only this test builds its own context

    delivery = mailer(server, tls, ssl_context=ssl.create_default_context()).send(
        ADDRESS, SUBJECT, TEXT, key="k1"
    )
    assert delivery == Delivery(ok=False, retry=False, detail="starttls: server certificate not trusted")
    assert server.logins == []


def test_a_refused_login_fails_for_good(server: SmtpReceiver, tls: TlsFiles) -> None:
    delivery = mailer(server, tls, password=WRONG_PASSWORD).send(ADDRESS, SUBJECT, TEXT, key="k1")
    assert delivery == Delivery(ok=False, retry=False, detail="auth: SMTP 535")
    assert server.handler.messages == []


@pytest.mark.parametrize(
    ("stage", "reply", "retry"),
    [
        ("rcpt", "450 4.2.1 Mailbox busy, try later", True),
        ("rcpt", "550 5.1.1 No such user <vakt.fana@bergen.example>", False),
        ("data", "451 4.3.0 Greylisted", True),
        ("data", "554 5.7.1 Rejected by policy", False),
    ],
)
def test_classifies_server_replies(
    server: SmtpReceiver, tls: TlsFiles, stage: str, reply: str, retry: bool
) -> None:
    if stage == "rcpt":
        server.handler.rcpt_reply = reply
    else:
        server.handler.data_reply = reply
    delivery = mailer(server, tls).send(ADDRESS, SUBJECT, TEXT, key="k1")
    assert (delivery.ok, delivery.retry) == (False, retry)
    assert reply[:3] in delivery.detail
    assert "vakt" not in delivery.detail
    assert "bergen" not in delivery.detail


def test_a_refused_connection_is_retried(tls: TlsFiles) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    channel = SmtpMailer(
        "127.0.0.1",
        port,
        sender="hub@bergen.example",
        ssl_context=tls.client_context(),
        timeout_s=1,
        local_hostname="hub.test",
    )
    delivery = channel.send(ADDRESS, SUBJECT, TEXT, key="k1")
    assert delivery == Delivery(ok=False, retry=True, detail="connect: ConnectionRefusedError")


def test_a_silent_server_is_a_timeout_to_retry(tls: TlsFiles) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections but never greets
        channel = SmtpMailer(
            "127.0.0.1",
            silent.getsockname()[1],
            sender="hub@bergen.example",
            ssl_context=tls.client_context(),
            timeout_s=0.5,
            local_hostname="hub.test",
        )
        delivery = channel.send(ADDRESS, SUBJECT, TEXT, key="k1")
    assert (delivery.ok, delivery.retry) == (False, True)


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b@c.example", "Nurse <n@x.example>", "n@x.example\r\nBcc: y"]
)
def test_a_bad_address_fails_for_good_without_a_session(
    server: SmtpReceiver, tls: TlsFiles, address: str
) -> None:
    delivery = mailer(server, tls).send(address, SUBJECT, TEXT, key="k1")
    assert delivery == Delivery(ok=False, retry=False, detail="address is not a plain name@domain")
    assert server.logins == []


def test_a_subject_with_a_line_break_fails_for_good(server: SmtpReceiver, tls: TlsFiles) -> None:
    delivery = mailer(server, tls).send(ADDRESS, "Alarm\r\nBcc: someone@evil.example", TEXT, key="k1")
    assert (delivery.ok, delivery.retry) == (False, False)
    assert server.handler.messages == []

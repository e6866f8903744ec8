"""The shipped Mosquitto configuration and ACL (deploy/mosquitto/), run for real with the hub's certificates.

``deploy/mosquitto/mosquitto.conf`` is rendered with only its deployment-specific lines changed (file paths
into a temporary directory, the port, persistence off, the log to stderr; see ``render_shipped_config``),
and Mosquitto runs it with ``deploy/mosquitto/dispenser.acl`` itself. Every certificate comes from the hub's
PKI: a CA made by ``CertificateAuthority.init``, device certificates issued from ``device_sim`` CSRs as at
enrollment (Ed25519), and the broker, hub, claim and inspector certificates from ``service_certs`` (Ed25519
too). The clients are paho and plain ``ssl`` sockets over TLS 1.3, and the checks are PROTOCOL.md section 2.4.

How a refusal is seen: Mosquitto acknowledges an unauthorised PUBLISH of an MQTT 3.1.1 client (PUBACK) and
drops it, and accepts any SUBSCRIBE, checking ``read`` for each message it would deliver. So forbidden
messages are published, each acknowledged, and then a *sentinel* is published that the watching clients
may receive: the hub (every device's uplink and provisioning requests) and the inspector (everything but
provisioning requests). Mosquitto queues a message for its subscribers before it acknowledges it, and
delivers each subscriber's queue in order, so once a watcher has the sentinel, a forbidden message would
have reached it already. A short grace wait is added on top, and then nothing forbidden may have arrived.

Mosquitto started as root drops to the user "mosquitto" before opening the certificate files; as the test
files are private to the user running the tests, the rendered configuration then adds ``user root``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from device_sim.device.identity import DeviceIdentity
from dispenser_hub.adapters.pki import CertificateAuthority
from dispenser_hub.adapters.pki.service_certs import (
    BROKER,
    CLIENT_IDENTITIES,
    issue_service_credential,
    write_service_credential,
)
from firmware_protocol import hub_subscriptions
from firmware_protocol.broker import BrokerAddress
from firmware_protocol.messages import Family
from tests.support.broker import LOCALHOST, START_TIMEOUT_S, STOP_TIMEOUT_S, free_tcp_port, require_mosquitto

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

pytestmark = pytest.mark.requires_service("mosquitto")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
SHIPPED_CONFIG = DEPLOY / "mosquitto.conf"
SHIPPED_ACL = DEPLOY / "dispenser.acl"
PROTOCOL_PORT = 8883

DEVICE = "RM3-000001"
"""An enrolled device."""
OTHER_DEVICE = "RM3-000009"
"""Another enrolled device; its connection publishes the sentinels."""
REVOKED = "RM3-000003"
"""An enrolled device whose certificate serial is in the CRL."""
CLAIMING = "RM3-000002"
"""A device enrolling with the claim credential."""
OTHER_CLAIMING = "RM3-000004"
FOREIGN = "foreign"
"""A device certificate for DEVICE from another CA of the same name."""
HUB, CLAIM, INSPECTOR = "dispenser-hub", "claim", "inspector"

WAIT_S = 5.0
GRACE_S = 0.3
MAX_PAYLOAD_BYTES = 65536
START_ATTEMPTS = 3
"""A free port may be taken by someone else before Mosquitto binds it: then try another."""


def topic(device_id: str, channel: str) -> str:
    return f"dsp/v1/{device_id}/{channel}"


# -- certificates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """The CA and every certificate and key the tests use, as files in ``directory``."""

    directory: Path
    ca: CertificateAuthority
    serials: dict[str, int]

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def certificate(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def write_crl(self, path: Path, *revoked: str, now: dt.datetime | None = None) -> None:
        moment = now or dt.datetime.now(dt.UTC)
        path.write_text(self.ca.crl([(self.serials[name], moment) for name in revoked], now=moment), "ascii")


def _enroll(ca: CertificateAuthority, device_id: str, directory: Path, *, name: str, now: dt.datetime) -> int:
    """A device certificate issued as at enrollment (the device's own Ed25519 key); its serial."""
    identity = DeviceIdentity.create(device_id, Family.MULTIDOSE_ROLL)
    issued = ca.issue(identity.csr_pem(), device_id=device_id, now=now)
    (directory / f"{name}.pem").write_text(issued.pem, encoding="ascii")
    key = directory / f"{name}.key"
    key.write_bytes(
        identity.signer.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    return issued.serial


def make_credentials(directory: Path) -> Credentials:
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.init(directory / "pki", organisation="Testby kommune", now=now)
    certificates = directory / "certs"
    broker = issue_service_credential(ca, BROKER, now=now, dns_names=["localhost"], ip_addresses=[LOCALHOST])
    write_service_credential(broker, certificates, ca_certificate_pem=ca.ca_certificate_pem)
    for name in CLIENT_IDENTITIES:
        credential = issue_service_credential(ca, name, now=now)
        write_service_credential(credential, certificates, ca_certificate_pem=ca.ca_certificate_pem)
    serials = {
        device_id: _enroll(ca, device_id, certificates, name=device_id, now=now)
        for device_id in (DEVICE, OTHER_DEVICE, REVOKED)
    }
    other_ca = CertificateAuthority.init(directory / "other-pki", organisation="Testby kommune", now=now)
    _enroll(other_ca, DEVICE, certificates, name=FOREIGN, now=now)
    return Credentials(certificates, ca, serials)


def client_context(
    credentials: Credentials, name: str | None, *, tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> ssl.SSLContext:
    """A client TLS context that checks the broker against the CA and presents ``name``'s certificate."""
    context = ssl.create_default_context(cafile=str(credentials.ca_file))
    context.minimum_version = context.maximum_version = tls
    if name is not None:
        context.load_cert_chain(credentials.certificate(name), credentials.key(name))
    return context


# -- the broker --------------------------------------------------------------------------------------------


def render_shipped_config(port: int, *, certificates: Path, crl_file: Path, state: Path) -> str:
    """The shipped configuration with exactly its deployment-specific lines changed; every other line kept.

    Each changed directive must occur exactly once, with the value checked where it is not a path, so that
    a change of the shipped file fails here instead of silently testing something else.
    """
    changes: dict[str, tuple[str | None, str]] = {
        "listener": (str(PROTOCOL_PORT), f"{port} {LOCALHOST}"),
        "cafile": (None, str(certificates / "ca.pem")),
        "certfile": (None, str(certificates / "broker.pem")),
        "keyfile": (None, str(certificates / "broker.key")),
        "crlfile": (None, str(crl_file)),
        "acl_file": (None, str(SHIPPED_ACL)),
        "persistence": ("true", "false"),
        "persistence_location": (None, f"{state}/"),
        "log_dest": ("syslog", "stderr"),
    }
    seen: dict[str, int] = dict.fromkeys(changes, 0)
    lines = []
    for line in SHIPPED_CONFIG.read_text(encoding="utf-8").splitlines():
        directive, _, value = line.partition(" ")
        if directive in changes:
            expected, replacement = changes[directive]
            assert expected in {None, value}, f"shipped config: {line!r}, expected {directive} {expected}"
            seen[directive] += 1
            line = f"{directive} {replacement}"  # noqa: PLW2901 - the rendered line replaces the shipped one
        lines.append(line)
    assert all(count == 1 for count in seen.values()), f"each directive once in the shipped config: {seen}"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("user root")  # not "mosquitto": the test's files are private to this user
    return "\n".join(lines) + "\n"


class ShippedMosquitto:
    """Our own Mosquitto running the shipped configuration (rendered) and ACL."""

    def __init__(self, workdir: Path, credentials: Credentials, crl_file: Path) -> None:
        self._binary = require_mosquitto()
        self._workdir = workdir
        self._credentials = credentials
        self.crl_file = crl_file
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_tcp_port()
            self.config_path.write_text(
                render_shipped_config(
                    port,
                    certificates=self._credentials.directory,
                    crl_file=self.crl_file,
                    state=self._workdir,
                ),
                encoding="utf-8",
            )
            with self.log_path.open("ab") as log:
                process = subprocess.Popen(  # our own binary, fixed arguments, no shell
                    [str(self._binary), "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if _listening(port, process):
                self._process, self.port = process, port
                return
            _terminate(process)
            if "Address already in use" not in self.log_tail() or attempt == START_ATTEMPTS:
                pytest.fail(f"Mosquitto did not start with the shipped config:\n{self.log_tail()}")
            self.log_path.unlink()

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its configuration, certificates and CRL again."""
        assert self._process is not None
        self._process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)

    def log_tail(self) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            if self.log_path.exists()
            else ""
        )


def _listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((LOCALHOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(credentials: Credentials, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShippedMosquitto]:
    workdir = tmp_path_factory.mktemp("mosquitto")
    credentials.write_crl(workdir / "crl.pem", REVOKED)
    mosquitto = ShippedMosquitto(workdir, credentials, workdir / "crl.pem")
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


# -- clients -----------------------------------------------------------------------------------------------


def _text(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def connect_packet(client_id: str, *, will: tuple[str, bytes] | None = None) -> bytes:
    """An MQTT 3.1.1 CONNECT, clean session, keepalive 60 s, with a Last Will (QoS 1, retained) if given."""
    flags, payload = 0x02, _text(client_id.encode())
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20  # will flag, will QoS 1, will retain (PROTOCOL.md 2.1)
        payload += _text(will[0].encode()) + _text(will[1])
    body = _text(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + payload
    length, encoded = len(body), b""
    while True:
        length, digit = divmod(length, 128)
        encoded += bytes([digit | (0x80 if length else 0)])
        if not length:
            return b"\x10" + encoded + body


@dataclass(frozen=True)
class Attempt:
    """What came of a TLS connection and an MQTT CONNECT."""

    accepted: bool
    detail: str
    refused_in_tls: bool = False
    """TLS failed (an alert, or Mosquitto closed the connection): the MQTT CONNECT was never answered."""
    tls_version: str | None = None
    broker_certificate: x509.Certificate | None = None


def attempt_connect(
    port: int, context: ssl.SSLContext, client_id: str, *, will: tuple[str, bytes] | None = None
) -> Attempt:
    """Connect, send CONNECT, read CONNACK, drop the connection without DISCONNECT (the will goes out)."""
    try:
        with (
            socket.create_connection((LOCALHOST, port), timeout=WAIT_S) as raw,
            context.wrap_socket(raw, server_hostname=LOCALHOST) as tls,
        ):
            version, der = tls.version(), tls.getpeercert(binary_form=True)
            tls.sendall(connect_packet(client_id, will=will))
            reply = tls.recv(4)
    except (ssl.SSLError, ConnectionError) as exc:
        return Attempt(accepted=False, detail=f"{type(exc).__name__}: {exc}", refused_in_tls=True)
    certificate = None if der is None else x509.load_der_x509_certificate(der)
    if reply == b"\x20\x02\x00\x00":
        return Attempt(accepted=True, detail="CONNACK 0", tls_version=version, broker_certificate=certificate)
    return Attempt(accepted=False, detail=f"reply {reply!r}", refused_in_tls=not reply, tls_version=version)


class Peer:
    """A connected paho client (MQTT 3.1.1, QoS 1; clean session unless told) that keeps what it receives."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext,
        client_id: str,
        broker: ShippedMosquitto,
        *,
        host: str = LOCALHOST,
        clean_session: bool = True,
    ) -> None:
        self.client_id = client_id
        self._broker = broker
        self._received: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self._subscribed: dict[int, threading.Event] = {}
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            reconnect_on_failure=False,
        )
        self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(WAIT_S):
            self.close()
            pytest.fail(f"{client_id} did not connect; Mosquitto log:\n{broker.log_tail()}")

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: paho.ConnectFlags, code: ReasonCode, _p: Properties | None
    ) -> None:
        if not code.is_failure:
            self.connected.set()

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: paho.DisconnectFlags, _r: ReasonCode, _p: Properties | None
    ) -> None:
        self.disconnected.set()

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with self._changed:
            self._received.append((message.topic, bytes(message.payload)))
            self._changed.notify_all()

    def _on_subscribe(
        self, _c: paho.Client, _u: object, mid: int, _r: list[ReasonCode], _p: Properties | None
    ) -> None:
        self._subscribed.setdefault(mid, threading.Event()).set()

    def subscribe(self, *filters: str) -> None:
        result, mid = self.client.subscribe([(topic_filter, 1) for topic_filter in filters])
        assert result == paho.MQTT_ERR_SUCCESS
        assert mid is not None
        assert self._subscribed.setdefault(mid, threading.Event()).wait(WAIT_S), f"no SUBACK for {filters}"

    def publish(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for PUBACK (which Mosquitto sends for a refused message too)."""
        info = self.client.publish(topic_name, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), f"{self.client_id}: no PUBACK for {topic_name}"

    def wait_for(self, payload: bytes) -> str:
        """The topic ``payload`` arrived on (waits for it)."""
        with self._changed:
            found = self._changed.wait_for(lambda: self._topic_of(payload) is not None, WAIT_S)
            topic_name = self._topic_of(payload)
        assert found, (
            f"{self.client_id} never received {payload!r}; it has {self.received()}; Mosquitto log:\n"
            f"{self._broker.log_tail()}"
        )
        assert topic_name is not None
        return topic_name

    def _topic_of(self, payload: bytes) -> str | None:
        return next((name for name, body in self._received if body == payload), None)

    def received(self, marker: bytes = b"") -> list[tuple[str, bytes]]:
        with self._changed:
            return [(name, body) for name, body in self._received if marker in body]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Connect(Protocol):
    """``connect(certificate name, client id)``: a connected ``Peer``, closed at the end of the test."""

    def __call__(self, name: str, client_id: str) -> Peer:
        """Connect as ``name`` (a certificate) with ``client_id``."""
        ...


@pytest.fixture
def connect(broker: ShippedMosquitto, credentials: Credentials) -> Iterator[Connect]:
    peers: list[Peer] = []

    def factory(name: str, client_id: str) -> Peer:
        peer = Peer(broker.port, client_context(credentials, name), client_id, broker)
        peers.append(peer)
        return peer

    try:
        yield factory
    finally:
        for peer in peers:
            peer.close()


@dataclass
class Watchers:
    """The hub and the inspector subscribed to everything, and a device to publish sentinels."""

    hub: Peer
    inspector: Peer
    sentinel_device: Peer
    token: bytes

    def forbidden(self, what: str) -> bytes:
        """A payload that no client may receive: published where the publisher may not publish."""
        return b"forbidden " + self.token + b" " + what.encode()

    def assert_dropped(self, *also: Peer) -> None:
        """After a sentinel, and a grace period: no watcher (and none of ``also``) got a forbidden payload."""
        sentinel = b"sentinel " + self.token + uuid.uuid4().hex.encode()
        self.sentinel_device.publish(topic(OTHER_DEVICE, "up/event"), sentinel)
        self.hub.wait_for(sentinel)
        self.inspector.wait_for(sentinel)
        time.sleep(GRACE_S)
        for peer in (self.hub, self.inspector, *also):
            arrived = [name for name, _ in peer.received(b"forbidden " + self.token)]
            assert arrived == [], f"{peer.client_id} received forbidden messages on {arrived}"


@pytest.fixture
def watchers(connect: Connect) -> Watchers:
    token = uuid.uuid4().hex.encode()
    hub = connect(HUB, f"hub-watch-{token.decode()}")
    inspector = connect(INSPECTOR, f"inspector-{token.decode()}")
    for peer in (hub, inspector):
        peer.subscribe("dsp/v1/#")
    return Watchers(hub, inspector, connect(OTHER_DEVICE, OTHER_DEVICE), token)


# -- tests -------------------------------------------------------------------------------------------------


def test_rendering_changes_the_deployment_lines_only(tmp_path: Path) -> None:
    shipped = SHIPPED_CONFIG.read_text(encoding="utf-8").splitlines()
    rendered = render_shipped_config(
        1234, certificates=tmp_path, crl_file=tmp_path / "crl.pem", state=tmp_path
    )
    changed = {
        old.partition(" ")[0] for old, new in zip(shipped, rendered.splitlines(), strict=False) if old != new
    }
    assert changed == {
        "listener", "cafile", "certfile", "keyfile", "crlfile", "acl_file", "persistence",
        "persistence_location", "log_dest",
    }  # fmt: skip
    assert "tls_version tlsv1.3" in shipped
    assert "require_certificate true" in shipped
    assert "use_identity_as_username true" in shipped


def test_a_device_connects_with_its_ed25519_certificate_over_tls_1_3(
    broker: ShippedMosquitto, credentials: Credentials
) -> None:
    attempt = attempt_connect(broker.port, client_context(credentials, DEVICE), DEVICE)
    assert attempt.accepted, f"{attempt.detail}; Mosquitto log:\n{broker.log_tail()}"
    assert attempt.tls_version == "TLSv1.3"
    assert attempt.broker_certificate is not None
    assert isinstance(attempt.broker_certificate.public_key(), Ed25519PublicKey)
    device = x509.load_pem_x509_certificate(credentials.certificate(DEVICE).read_bytes())
    assert isinstance(device.public_key(), Ed25519PublicKey)
    # The shipped listener takes TLS 1.3 only (tls_version tlsv1.3), although PROTOCOL.md 2.1 allows 1.2.
    older = attempt_connect(
        broker.port, client_context(credentials, DEVICE, tls=ssl.TLSVersion.TLSv1_2), DEVICE
    )
    assert not older.accepted
    assert "PROTOCOL_VERSION" in older.detail.upper()


def test_the_hubs_mqtts_settings_reach_the_broker_by_its_dns_name(
    broker: ShippedMosquitto, credentials: Credentials, connect: Connect
) -> None:
    # What DISPENSER_MQTT_URL/_CAFILE/_CERTFILE/_KEYFILE become (Settings.broker_address), as the hub uses it.
    address = BrokerAddress.parse(
        f"mqtts://localhost:{broker.port}",
        cafile=str(credentials.ca_file),
        certfile=str(credentials.certificate(HUB)),
        keyfile=str(credentials.key(HUB)),
    )
    context = address.ssl_context()
    assert context is not None
    assert context.check_hostname  # the broker certificate must name "localhost" (its DNS SAN)
    hub = Peer(
        address.port, context, "dispenser-hub-settings", broker, host=address.host, clean_session=False
    )
    try:
        hub.subscribe(*hub_subscriptions())
        birth = f"birth {uuid.uuid4()}".encode()
        connect(DEVICE, DEVICE).publish(topic(DEVICE, "up/birth"), birth)
        assert hub.wait_for(birth) == topic(DEVICE, "up/birth")
    finally:
        hub.close()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(None, id="no-certificate"),
        pytest.param(REVOKED, id="revoked-in-the-crl"),
        pytest.param(FOREIGN, id="same-cn-from-another-ca"),
        pytest.param(BROKER, id="server-certificate"),  # ours, but serverAuth only: not for a client
    ],
)
def test_a_client_without_a_valid_client_certificate_is_refused_during_tls(
    broker: ShippedMosquitto, credentials: Credentials, name: str | None
) -> None:
    attempt = attempt_connect(broker.port, client_context(credentials, name), DEVICE)
    assert not attempt.accepted
    assert attempt.refused_in_tls, attempt.detail  # no CONNACK, not even a refusing one


def test_an_enrolled_device_uses_its_own_topics_only(connect: Connect, watchers: Watchers) -> None:
    device = connect(DEVICE, DEVICE)
    device.subscribe(topic(DEVICE, "down/cmd"), topic(DEVICE, "down/config"), topic(OTHER_DEVICE, "down/#"))
    hub = connect(HUB, "hub-publisher")
    for channel in ("up/state", "up/event"):
        payload = f"{channel} {uuid.uuid4()}".encode()
        device.publish(topic(DEVICE, channel), payload)
        assert watchers.hub.wait_for(payload) == topic(DEVICE, channel)
    command = f"command {uuid.uuid4()}".encode()
    hub.publish(topic(DEVICE, "down/cmd"), command)
    assert device.wait_for(command) == topic(DEVICE, "down/cmd")

    for forbidden in (
        topic(OTHER_DEVICE, "up/event"),
        topic(OTHER_DEVICE, "up/state"),
        topic(DEVICE, "down/cmd"),
        topic(DEVICE, "down/config"),
        topic(DEVICE, "prov/response"),
    ):
        device.publish(forbidden, watchers.forbidden(forbidden))
    # Reading another device's downlink: the subscription was accepted, but nothing is delivered.
    not_yours = watchers.token + b" command for " + OTHER_DEVICE.encode()
    hub.publish(topic(OTHER_DEVICE, "down/cmd"), not_yours)
    watchers.inspector.wait_for(not_yours)  # it was published (and the inspector may read it)...
    after = f"after {uuid.uuid4()}".encode()
    hub.publish(topic(DEVICE, "down/cmd"), after)
    device.wait_for(after)
    assert device.received(not_yours) == []  # ...but not to this device
    watchers.assert_dropped(device)


def test_a_device_acts_as_its_certificate_says_whatever_its_client_id(
    connect: Connect, watchers: Watchers
) -> None:
    impostor = connect(DEVICE, "RM3-000077")  # client id != CN: the ACL goes by the CN
    impostor.publish(topic("RM3-000077", "up/event"), watchers.forbidden("as its client id"))
    allowed = f"as its CN {uuid.uuid4()}".encode()
    impostor.publish(topic(DEVICE, "up/event"), allowed)
    watchers.hub.wait_for(allowed)
    watchers.assert_dropped()


def test_a_device_last_will_goes_out_on_its_own_up_state_only(
    broker: ShippedMosquitto, credentials: Credentials, watchers: Watchers
) -> None:
    context = client_context(credentials, DEVICE)
    foreign_will = (topic(OTHER_DEVICE, "up/state"), watchers.forbidden("will for another device"))
    assert attempt_connect(broker.port, context, DEVICE, will=foreign_will).accepted
    own_will = f"death {uuid.uuid4()}".encode()
    assert attempt_connect(broker.port, context, DEVICE, will=(topic(DEVICE, "up/state"), own_will)).accepted
    assert watchers.hub.wait_for(own_will) == topic(DEVICE, "up/state")
    watchers.assert_dropped()


def test_the_claim_credential_may_only_enroll_its_own_client_id(connect: Connect, watchers: Watchers) -> None:
    claim = connect(CLAIM, CLAIMING)
    claim.subscribe(
        topic(CLAIMING, "prov/response"), topic(OTHER_CLAIMING, "prov/response"), topic(CLAIMING, "down/#")
    )
    hub = connect(HUB, "hub-publisher")
    request = f"prov.request {uuid.uuid4()}".encode()
    claim.publish(topic(CLAIMING, "prov/request"), request)
    assert watchers.hub.wait_for(request) == topic(CLAIMING, "prov/request")
    response = f"prov.accepted {uuid.uuid4()}".encode()
    hub.publish(topic(CLAIMING, "prov/response"), response)
    assert claim.wait_for(response) == topic(CLAIMING, "prov/response")

    for forbidden in (
        topic(CLAIMING, "up/birth"),
        topic(CLAIMING, "up/state"),
        topic(CLAIMING, "up/event"),
        topic(CLAIMING, "prov/response"),
        topic(OTHER_CLAIMING, "prov/request"),
        topic(DEVICE, "up/event"),
        topic(CLAIM, "up/event"),  # the device topics of its user name are taken back too
    ):
        claim.publish(forbidden, watchers.forbidden(forbidden))
    # Another client id's response and the claimed id's downlink: published, never delivered to the claim.
    not_yours = [watchers.token + b" not yours " + str(n).encode() for n in range(2)]
    hub.publish(topic(OTHER_CLAIMING, "prov/response"), not_yours[0])
    hub.publish(topic(CLAIMING, "down/cmd"), not_yours[1])
    after = f"after {uuid.uuid4()}".encode()
    hub.publish(topic(CLAIMING, "prov/response"), after)
    claim.wait_for(after)
    assert claim.received(b" not yours ") == []
    watchers.assert_dropped(claim)


def test_the_hub_reads_all_uplink_and_publishes_downlink(connect: Connect, watchers: Watchers) -> None:
    device = connect(DEVICE, DEVICE)
    claim = connect(CLAIM, CLAIMING)
    hub = connect(HUB, "hub-publisher")
    uplink = {
        (device, topic(DEVICE, "up/birth")),
        (device, topic(DEVICE, "up/telemetry")),
        (device, topic(DEVICE, "up/ack")),
        (watchers.sentinel_device, topic(OTHER_DEVICE, "up/event")),
        (claim, topic(CLAIMING, "prov/request")),
    }
    for publisher, name in uplink:
        payload = f"{name} {uuid.uuid4()}".encode()
        publisher.publish(name, payload)
        assert watchers.hub.wait_for(payload) == name

    config = f"config {uuid.uuid4()}".encode()
    hub.publish(topic(DEVICE, "down/config"), config, retain=True)  # retained: delivered on subscribing
    device.subscribe(topic(DEVICE, "down/#"))
    assert device.wait_for(config) == topic(DEVICE, "down/config")
    hub.publish(topic(DEVICE, "down/config"), b"", retain=True)  # clear the retained message
    claim.subscribe(topic(CLAIMING, "prov/response"))
    rejected = f"prov.rejected {uuid.uuid4()}".encode()
    hub.publish(topic(CLAIMING, "prov/response"), rejected)
    claim.wait_for(rejected)

    for forbidden in (topic(DEVICE, "up/event"), topic(DEVICE, "up/state")):  # nobody speaks for a device
        hub.publish(forbidden, watchers.forbidden(forbidden))
    watchers.assert_dropped()


def test_the_inspector_reads_but_never_publishes(connect: Connect, watchers: Watchers) -> None:
    device = connect(DEVICE, DEVICE)
    hub = connect(HUB, "hub-publisher")
    event, command = f"event {uuid.uuid4()}".encode(), f"command {uuid.uuid4()}".encode()
    device.publish(topic(DEVICE, "up/event"), event)
    hub.publish(topic(DEVICE, "down/cmd"), command)
    watchers.inspector.wait_for(event)
    watchers.inspector.wait_for(command)

    inspector = connect(INSPECTOR, "RM3-000005")  # a device-like client id, as the claim lines use it
    for forbidden in (
        topic("RM3-000005", "prov/request"),
        topic(DEVICE, "up/event"),
        topic(DEVICE, "down/cmd"),
        topic(DEVICE, "prov/response"),
        topic(INSPECTOR, "up/event"),
    ):
        inspector.publish(forbidden, watchers.forbidden(forbidden))
    watchers.assert_dropped()


def test_a_message_bigger_than_the_protocol_allows_is_refused(connect: Connect, watchers: Watchers) -> None:
    device = connect(DEVICE, DEVICE)
    largest = watchers.token + b"x" * (MAX_PAYLOAD_BYTES - len(watchers.token))
    device.publish(topic(DEVICE, "up/event"), largest)
    watchers.hub.wait_for(largest)
    device.client.publish(topic(DEVICE, "up/event"), watchers.forbidden("x" * 1024) + largest, qos=1)
    assert device.disconnected.wait(WAIT_S), "a packet over max_packet_size must cost the connection"
    watchers.assert_dropped()


def test_the_crl_is_read_again_on_sighup_and_must_not_expire(
    credentials: Credentials, tmp_path: Path
) -> None:
    crl_file = tmp_path / "crl.pem"
    credentials.write_crl(crl_file)
    mosquitto = ShippedMosquitto(tmp_path, credentials, crl_file)
    mosquitto.start()
    device, hub = client_context(credentials, DEVICE), client_context(credentials, HUB)
    peers: list[Peer] = []
    try:
        peers.append(connected := Peer(mosquitto.port, device, DEVICE, mosquitto))
        connected.subscribe(topic(DEVICE, "down/cmd"))
        peers.append(hub_peer := Peer(mosquitto.port, hub, "hub-publisher", mosquitto))

        credentials.write_crl(crl_file, DEVICE)  # the device is retired: `dispenser-hub pki crl`, reload
        mosquitto.reload()
        _eventually(lambda: attempt_connect(mosquitto.port, device, "RM3-000001-again").refused_in_tls)
        # A connection made before the revocation stays up (deploy/README.md says so).
        still = f"still connected {uuid.uuid4()}".encode()
        hub_peer.publish(topic(DEVICE, "down/cmd"), still)
        connected.wait_for(still)

        eight_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
        credentials.write_crl(crl_file, now=eight_days_ago)  # not renewed: its next update (7 days) passed
        mosquitto.reload()
        _eventually(
            lambda: attempt_connect(mosquitto.port, hub, "hub-again").refused_in_tls
        )  # nobody gets in
    finally:
        for peer in peers:
            peer.close()
        mosquitto.stop()


def _eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the condition did not become true"
        time.sleep(0.05)


class TakenOverError(AssertionError):
    """Another identity took over a client's session."""


@pytest.mark.xfail(
    reason="known problem: Mosquitto 2.0 ties no client id to an identity, and the shared claim credential "
    "connects with any client id (PROTOCOL.md 9.4), so it can take over the hub's or a device's session; "
    "see deploy/README.md",
    raises=TakenOverError,
    strict=True,
)
def test_the_claim_credential_cannot_take_over_the_hubs_client_id(
    broker: ShippedMosquitto, credentials: Credentials, connect: Connect
) -> None:
    hub = connect(HUB, "dispenser-hub")
    assert attempt_connect(broker.port, client_context(credentials, CLAIM), "dispenser-hub").accepted
    time.sleep(GRACE_S)
    if hub.disconnected.is_set():
        raise TakenOverError("the claim credential, connecting as client id 'dispenser-hub', cut the hub off")

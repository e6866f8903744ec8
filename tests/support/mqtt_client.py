"""``MqttProbe``: a blocking paho-mqtt 2.x (callback API v2) client for tests, with a timeout on every wait.

Received messages land in a queue; ``expect()`` takes the next one or fails the test after a timeout. The
network loop runs in our own thread with a short poll interval instead of ``loop_start()``, because paho's
``loop_stop()`` can block for up to a second and its thread reconnects on its own, which tests of abnormal
disconnects (``drop_connection()``) must not have.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

if TYPE_CHECKING:
    from types import TracebackType

    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from tests.support.broker import MqttBroker

DEFAULT_TIMEOUT_S = 3.0
_LOOP_POLL_S = 0.01


@dataclass(frozen=True)
class Will:
    """A Last Will and Testament registered at connect time."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class MqttProbe:
    """A test MQTT client: connect, subscribe, publish and expect messages, each bounded by a timeout."""

    def __init__(
        self,
        broker: MqttBroker,
        client_id: str = "",
        *,
        clean_session: bool = True,
        will: Will | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Create (but do not connect) a client for ``broker``; an empty ``client_id`` lets paho pick one."""
        self.broker = broker
        self.timeout = timeout
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._connected = threading.Event()
        self._connect_reason: ReasonCode | None = None
        self._session_present = False
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_ready = threading.Condition()
        self._stop_loop = threading.Event()
        self._loop_thread: threading.Thread | None = None

    # -- paho callbacks (network thread) ---------------------------------------------------------------------

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connect_reason = reason_code
        self._session_present = flags.session_present
        self._connected.set()

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        with self._suback_ready:
            self._subacks[mid] = reason_codes
            self._suback_ready.notify_all()

    def _run_loop(self) -> None:
        while not self._stop_loop.is_set():
            if self._client.loop(timeout=_LOOP_POLL_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # disconnected (cleanly or not): a probe never reconnects by itself

    # -- test-facing API -------------------------------------------------------------------------------------

    @property
    def session_present(self) -> bool:
        """The CONNACK's session-present flag."""
        return self._session_present

    def connect(self, keepalive: int = 60) -> Self:
        """Connect and wait for a successful CONNACK."""
        self._client.connect(self.broker.host, self.broker.port, keepalive=keepalive)
        self._stop_loop.clear()
        self._loop_thread = threading.Thread(target=self._run_loop, name="mqtt-probe", daemon=True)
        self._loop_thread.start()
        if not self._connected.wait(self.timeout):
            self.close()
            msg = f"no CONNACK from {self.broker.kind} at {self.broker.url} within {self.timeout} s"
            raise AssertionError(msg)
        if self._connect_reason is None or self._connect_reason.is_failure:
            msg = f"connection refused by {self.broker.kind}: {self._connect_reason}"
            raise AssertionError(msg)
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK; fail if the broker refused or downgraded the QoS."""
        with self._suback_ready:
            result, mid = self._client.subscribe(topic, qos=qos)
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                msg = f"subscribe({topic!r}) failed: {result}"
                raise AssertionError(msg)
            if not self._suback_ready.wait_for(lambda: mid in self._subacks, self.timeout):
                msg = f"no SUBACK for {topic!r} within {self.timeout} s"
                raise AssertionError(msg)
            granted = self._subacks.pop(mid)
        if [code.value for code in granted] != [qos]:
            msg = f"subscription to {topic!r} at QoS {qos} answered with {granted}"
            raise AssertionError(msg)

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False) -> None:
        """Publish; for QoS > 0 wait until the broker acknowledged it."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            msg = f"publish to {topic!r} not acknowledged within {self.timeout} s (rc={info.rc})"
            raise AssertionError(msg)

    def expect(self, timeout: float | None = None) -> paho.MQTTMessage:
        """The next received message; fails the test if none arrives within the timeout."""
        wait = self.timeout if timeout is None else timeout
        try:
            return self.messages.get(timeout=wait)
        except queue.Empty:
            msg = f"no message received within {wait} s"
            raise AssertionError(msg) from None

    def expect_nothing(self, within: float = 0.3) -> None:
        """Fail the test if a message arrives within ``within`` seconds."""
        try:
            message = self.messages.get(timeout=within)
        except queue.Empty:
            return
        msg = f"unexpected message on {message.topic!r}: {message.payload!r}"
        raise AssertionError(msg)

    def drop_connection(self) -> None:
        """Close the TCP connection without sending DISCONNECT, as a crashed device would."""
        self._join_loop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Disconnect cleanly (if still connected) and stop the network thread."""
        thread = self._loop_thread
        if thread is not None and thread.is_alive():
            self._client.disconnect()
            thread.join(self.timeout)  # the loop sends DISCONNECT, closes the socket and ends by itself
        self._join_loop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def _join_loop(self) -> None:
        thread, self._loop_thread = self._loop_thread, None
        if thread is not None:
            self._stop_loop.set()
            thread.join(self.timeout)
            if thread.is_alive():
                msg = "MQTT probe network thread did not stop"
                raise AssertionError(msg)

    def __enter__(self) -> Self:
        """Connect."""
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close."""
        self.close()

"""The hub's MQTT connection: persistent session, batched ingest, acknowledgement only after the commit.

Rules:

- One paho client (MQTT 3.1.1, ``clean_session=False``, QoS 1 subscriptions to ``hub_subscriptions()``)
  with a fixed client id, so the broker keeps the hub's session and queues what devices publish while
  the hub is down; paho reconnects with backoff (1 s .. 30 s).
- ``manual_ack``: paho's network thread only queues each message (no business logic in its callback).
  One ingest thread takes messages in arrival order (so per-device order is kept), up to ``batch_size`` at
  a time, hands the batch to ``handle`` (one transaction) and acknowledges every message of the batch
  only when ``handle`` returned. If ``handle`` raises (the database is down), nothing is acknowledged and
  the same batch is retried with backoff: nothing accepted by the broker is lost, and the broker sends
  no more than its in-flight window meanwhile.
- Acknowledgements for messages received on an earlier connection are dropped: the broker redelivers
  those after the reconnect (and ingest recognises them as duplicates).
- ``publish`` (QoS 1) is the ``DevicePublisher`` the outbox uses; it refuses while disconnected, so the
  outbox keeps the command and sends it after the reconnect.

Brokers are meant to limit unacknowledged messages per client (Mosquitto ``max_inflight_messages``), but
Mosquitto 2.0.11 was measured to keep sending once acknowledgements flow (BENCHMARKS.md, hub ingest): the
in-memory queue between paho and the ingest thread can hold more than that window while the database is
slow or down. Nothing is lost by that (unacknowledged messages are redelivered after a restart), but the
queue costs memory.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from paho.mqtt.enums import MQTTErrorCode

from dispenser_hub.adapters.mqtt.connection import paho_client
from dispenser_hub.ports import Inbound
from firmware_protocol import hub_subscriptions

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import paho.mqtt.client as paho
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from firmware_protocol.broker import BrokerAddress

_log = logging.getLogger(__name__)
DEFAULT_BATCH = 200
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class _Delivered:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: datetime


class HubMqttClient:
    """Receives device messages into ``handle`` and publishes downlink (see the module rules)."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        handle: Callable[[Sequence[Inbound]], object],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch_size: int = DEFAULT_BATCH,
        subscriptions: Sequence[str] | None = None,
    ) -> None:
        """Prepare (not connect) the client; ``handle`` processes a batch and returns after its commit."""
        self.address = address
        self._handle = handle
        self._now = now
        self._batch_size = batch_size
        self._subscriptions = list(subscriptions or hub_subscriptions())
        self._queue: queue.Queue[_Delivered | None] = queue.Queue()
        self._generation = 0
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self.acked = 0
        self._client = paho_client(address, client_id, clean_session=False, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run, name="hub-ingest", daemon=True)

    # -- life cycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start the ingest thread."""
        self._worker.start()
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect (the broker keeps the session)."""
        self._stop.set()
        self._queue.put(None)
        self._worker.join(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish QoS 1; ``ConnectionError`` while disconnected, so the outbox keeps the command for later.

        (paho would queue it in memory, where a crash loses it; the outbox row is the durable copy.)
        """
        if not self.subscribed.is_set():
            msg = f"not connected to {self.address.url}"
            raise ConnectionError(msg)
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            msg = f"publish to {topic} failed: {info.rc}"
            raise ConnectionError(msg)

    @property
    def backlog(self) -> int:
        """Messages received and not yet processed."""
        return self._queue.qsize()

    # -- paho callbacks (network thread) -------------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            _log.error("broker %s refused the hub's connection: %s", self.address.url, reason)
            return
        self._generation += 1
        _log.info("connected to %s (session present: %s)", self.address.url, flags.session_present)
        client.subscribe([(topic, 1) for topic in self._subscriptions])

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            _log.error("broker refused subscriptions: %s", ", ".join(refused))
            return
        self.subscribed.set()

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.subscribed.clear()
        if not self._stop.is_set():
            _log.warning("disconnected from %s (%s); reconnecting", self.address.url, reason)

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        self._queue.put(
            _Delivered(
                message.topic,
                bytes(message.payload),
                message.mid,
                message.qos,
                self._generation,
                self._now(),
            )
        )

    # -- ingest thread -------------------------------------------------------------------------------------

    def _take_batch(self) -> list[_Delivered] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            inbound = [Inbound(d.topic, d.payload, d.received_at) for d in batch]
            delay = RETRY_MIN_S
            while True:
                try:
                    self._handle(inbound)
                    break
                except Exception:  # noqa: BLE001 - keep the batch unacknowledged and retry; never die
                    _log.exception("ingest of %d messages failed; retrying in %.1f s", len(batch), delay)
                    if self._stop.wait(delay):
                        return
                    delay = min(RETRY_MAX_S, delay * 2)
            self._ack(batch)

    def _ack(self, batch: list[_Delivered]) -> None:
        generation = self._generation
        for delivered in batch:
            if delivered.qos > 0 and delivered.generation == generation:
                self._client.ack(delivered.mid, delivered.qos)
                self.acked += 1

"""Feeds every message on a broker to the protocol inspector (the paho side of ``dispenser-hub inspect``)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from paho.mqtt.enums import MQTTErrorCode

from dispenser_hub.adapters.mqtt.connection import paho_client

if TYPE_CHECKING:
    from collections.abc import Callable

    import paho.mqtt.client as paho
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from dispenser_hub.inspector.analysis import Inspection, Inspector
    from firmware_protocol.broker import BrokerAddress


class BrokerMonitor:
    """Subscribes to ``topic_filter`` and hands each message's inspection to ``sink``.

    Reconnects on its own (paho's backoff, 1-30 s) and re-subscribes after every reconnect. ``status``
    receives one line for each connection change, for the person watching.
    """

    def __init__(
        self,
        address: BrokerAddress,
        inspector: Inspector,
        sink: Callable[[Inspection], None],
        *,
        topic_filter: str = "#",
        status: Callable[[str], None] = lambda _line: None,
    ) -> None:
        """Prepare (but do not connect) a monitor."""
        self.address = address
        self.inspector = inspector
        self.sink = sink
        self.topic_filter = topic_filter
        self.status = status
        self.subscribed = threading.Event()
        self._client = paho_client(address)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.status(f"broker {self.address.url} refused the connection: {reason}")
            return
        self.status(f"connected to {self.address.url}, watching {self.topic_filter!r}")
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        _reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
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
        self.status(f"disconnected from {self.address.url} ({reason}); reconnecting")

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        now_ms = time.time_ns() // 1_000_000
        self.sink(
            self.inspector.inspect(
                message.topic, bytes(message.payload), received_ms=now_ms, retained=bool(message.retain)
            )
        )

    def start(self) -> None:
        """Connect in the background (paho's network thread); returns at once."""
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()

    def run_forever(self) -> None:
        """Connect and process messages in the calling thread until interrupted."""
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_forever(retry_first_connection=True)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        if self._client.disconnect() not in {MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN}:
            self.status("disconnect failed; closing anyway")
        self._client.loop_stop()

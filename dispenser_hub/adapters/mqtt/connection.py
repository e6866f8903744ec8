"""paho-mqtt client construction shared by the hub's MQTT adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

if TYPE_CHECKING:
    from firmware_protocol.broker import BrokerAddress


def paho_client(
    address: BrokerAddress, client_id: str = "", *, clean_session: bool = True, manual_ack: bool = False
) -> paho.Client:
    """A paho client (callback API 2, MQTT 3.1.1) configured for ``address``; not yet connected."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, manual_ack=manual_ack
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    context = address.ssl_context()
    if context is not None:
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client

"""Broker addresses and paho-mqtt client construction shared by the hub's MQTT adapters."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens and how to authenticate to it."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @classmethod
    def parse(
        cls, url: str, *, cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None
    ) -> BrokerAddress:
        """Parse ``mqtt://[user:pass@]host[:port]`` or ``mqtts://...`` (TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            msg = f"broker URL {url!r} must start with mqtt:// or mqtts://, e.g. mqtt://127.0.0.1:1883"
            raise BrokerUrlError(msg)
        if not parts.hostname:
            msg = f"broker URL {url!r} has no host, e.g. mqtt://127.0.0.1:1883"
            raise BrokerUrlError(msg)
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            msg = f"broker URL {url!r} has an invalid port"
            raise BrokerUrlError(msg) from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=cafile,
            certfile=certfile,
            keyfile=keyfile,
        )

    @property
    def url(self) -> str:
        """The address as a URL without credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def client(self, client_id: str = "", *, clean_session: bool = True) -> paho.Client:
        """A paho client (callback API 2, MQTT 3.1.1) configured for this address; not yet connected."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            context = ssl.create_default_context(cafile=self.cafile)
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile)
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        return client

"""Broker addresses: the ``mqtt://`` and ``mqtts://`` URLs devices, the simulator and the hub are given.

Pure parsing shared by every MQTT client in the project (the simulator's links, the hub's adapters, the
inspector), so a URL means the same thing everywhere and is refused with the same message. Building a TLS
context loads certificate files but opens no connection.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens and how to authenticate: ``mqtt://[user:pass@]host[:port]`` or ``mqtts://``."""

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
        """Parse a broker URL; TLS files (CA, client certificate and key) only apply to ``mqtts://``."""
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
        tls = parts.scheme == "mqtts"
        if not tls and (cafile or certfile or keyfile):
            msg = f"TLS files were given for {url!r}; use mqtts:// for a TLS connection"
            raise BrokerUrlError(msg)
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
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

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (verifying the broker against ``cafile`` or the system CAs), or ``None``.

        Building one loads certificates: build it once and share it between connections.
        """
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context

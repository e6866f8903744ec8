"""Shared fixtures: real MQTT brokers, unique topic roots, and the CI guard against skipped service tests.

Fixtures (details in ``tests/support/broker.py``):

* ``mqtt_broker`` (session): the broker chosen by ``$DISPENSER_TEST_BROKER`` (Mosquitto when installed).
* ``mosquitto_broker`` (session): Mosquitto specifically; skipped when missing, failed under ``CI=true``.
* ``amqtt_broker`` (session): the embedded amqtt broker; always available.
* ``fresh_mqtt_broker`` (function): factory ``(kind=None) -> MqttBroker`` for a private broker that a test may
  stop/restart freely; stopped at teardown. Never stop or restart the shared session brokers.
* ``unique_topic_root`` (function): ``test/<uuid hex>``, so tests never see each other's messages.
* ``postgres_url`` (function): a PostgreSQL URL whose ``search_path`` is a fresh empty schema, dropped at
  teardown (``tests/support/postgres.py``); skipped without a server, failed under ``CI=true``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

import pytest

from tests.support.broker import BrokerKind, MqttBroker, selected_broker_kind, start_broker
from tests.support.postgres import fresh_schema
from tests.support.services import SERVICE_MARKER, ci_skip_failure_message

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path

pytest_plugins = ["pytester"]  # tests/test_ci_guard.py runs small pytest sessions to check the CI skip guard

# Fixtures that need a real external service: tests using them get ``requires_service(<service>)``.
_SERVICE_FIXTURES = {
    "mqtt_broker": "mqtt-broker",
    "mosquitto_broker": "mosquitto",
    "fresh_mqtt_broker": "mqtt-broker",
    "postgres_url": "postgresql",
}


class BrokerFactory(Protocol):
    """Starts a private broker: ``kind`` None means the same choice as ``mqtt_broker``."""

    def __call__(self, kind: BrokerKind | None = None) -> MqttBroker:
        """Start a broker of ``kind`` on a free port of 127.0.0.1."""
        ...


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests using a service fixture with ``requires_service``; check explicit markers name a service."""
    for item in items:
        for marker in item.iter_markers(SERVICE_MARKER):
            if not marker.args or not all(isinstance(arg, str) for arg in marker.args):
                msg = f"{item.nodeid}: use @pytest.mark.{SERVICE_MARKER}('<service name>')"
                raise pytest.UsageError(msg)
        for fixture, service in _SERVICE_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.requires_service(service))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under ``CI=true``, turn a skip of a ``requires_service`` test into a failure."""
    report: pytest.TestReport = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        message = ci_skip_failure_message(item, reason)
        if message is not None:
            report.outcome = "failed"
            report.longrepr = message
    return report


def _start(kind: BrokerKind, workdir: Path) -> Iterator[MqttBroker]:
    broker = start_broker(kind, workdir)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    """Our own Mosquitto on a free port of 127.0.0.1 (skipped when not installed; a failure under CI)."""
    yield from _start("mosquitto", tmp_path_factory.mktemp("mosquitto"))


@pytest.fixture(scope="session")
def amqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    """The embedded amqtt broker in a background thread on a free port of 127.0.0.1."""
    yield from _start("amqtt", tmp_path_factory.mktemp("amqtt"))


@pytest.fixture(scope="session")
def mqtt_broker(request: pytest.FixtureRequest) -> MqttBroker:
    """The shared MQTT broker: Mosquitto if installed, else amqtt (see ``$DISPENSER_TEST_BROKER``)."""
    broker: MqttBroker = request.getfixturevalue(f"{selected_broker_kind()}_broker")
    return broker


@pytest.fixture
def fresh_mqtt_broker(tmp_path: Path) -> Iterator[BrokerFactory]:
    """A factory of private brokers for tests that stop or restart them; all are stopped at teardown."""
    started: list[MqttBroker] = []

    def factory(kind: BrokerKind | None = None) -> MqttBroker:
        chosen = selected_broker_kind() if kind is None else kind
        broker = start_broker(chosen, tmp_path / f"{chosen}-{len(started)}")
        started.append(broker)
        return broker

    try:
        yield factory
    finally:
        for broker in started:
            broker.stop()


@pytest.fixture
def unique_topic_root() -> str:
    """A topic prefix no other test uses: ``test/<uuid hex>``."""
    return f"test/{uuid.uuid4().hex}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A ``postgresql+psycopg://`` URL on a fresh empty schema of the test server, dropped afterwards."""
    with fresh_schema() as url:
        yield url

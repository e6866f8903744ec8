"""MQTT adapters: the hub's paho-based device gateway and an embedded broker for development and tests.

Import submodules explicitly
(``from dispenser_hub.adapters.mqtt.embedded_broker import EmbeddedBroker``), so that using the gateway does
not pull in amqtt.
"""

"""Reusable test support: real-service fixtures (MQTT brokers), the CI skip guard and small MQTT helpers."""

"""Simulated medication dispensers speaking ``firmware_protocol`` over MQTT for tests, demos and load runs."""

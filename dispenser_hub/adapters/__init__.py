"""Adapters: the only code in the hub that touches the outside world (MQTT, database, scheduler, ...)."""

"""Tests of the hub's REST API (``dispenser_hub.web``) through FastAPI's test client."""

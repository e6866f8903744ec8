"""Tests of the hub (dispenser_hub)."""

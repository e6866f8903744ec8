"""Tests of the hub's adapters (the code that touches the outside world)."""

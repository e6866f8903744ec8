"""Tests of the device simulator: clocks, transport, fleet driver and simulated dispensers."""

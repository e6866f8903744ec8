"""Tests of the protocol inspector and the demo command."""

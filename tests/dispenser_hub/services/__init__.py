"""Tests of the application services over the in-memory store."""

"""Tests of the wire protocol package and its generated artefacts."""

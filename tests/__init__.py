"""Test suite. Every test directory is a package so that test modules may share basenames."""

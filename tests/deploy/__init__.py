"""Tests of the deployment files in deploy/: the shipped Mosquitto configuration and ACL, run for real."""

"""Tests of the notification channel adapters against real local servers."""

"""Explicit state machines keyed by business key."""

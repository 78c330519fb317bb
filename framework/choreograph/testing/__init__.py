"""Test support: locating real servers for integration tests, and (later) the in-memory TestKit."""

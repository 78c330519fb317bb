"""Metrics, logs and trace context for services."""

"""Contracts layer: Avro schemas as the source of truth, event models, envelope, serde, checks."""

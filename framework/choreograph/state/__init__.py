"""State layer: key-value stores per partition, buffered per transaction, changelog-backed."""

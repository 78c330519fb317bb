"""The saga tracker: correlates domain events into end-to-end process traces."""

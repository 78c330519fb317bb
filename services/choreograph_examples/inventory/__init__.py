"""Team inventory: reserves and releases stock."""

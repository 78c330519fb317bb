"""Team orders: owns the order's outcome."""

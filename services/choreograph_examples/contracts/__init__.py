"""Event models generated from schemas/avro by `choreograph schemas codegen`. Do not edit."""

DOMAINS = ('choreograph', 'inventory', 'orders', 'payments', 'shipping')

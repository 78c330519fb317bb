"""Event models generated from schemas/avro by `choreograph schemas codegen`. Do not edit."""

DOMAINS = ('inventory', 'orders', 'payments', 'shipping')

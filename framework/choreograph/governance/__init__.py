"""Governance: decision records, policies as code, approvals and least-privilege credentials."""

"""Observability: metrics, structured logs with PII masked."""

"""The store tests' backends for the privacy tests: ``database_url`` (SQLite, and PostgreSQL marked ``postgres``)
and ``hot_factory`` (memory, and Redis marked ``redis``, on a unique key prefix)."""

from __future__ import annotations

from tests.store.conftest import database_url, hot_factory, postgres_url

__all__ = ["database_url", "hot_factory", "postgres_url"]

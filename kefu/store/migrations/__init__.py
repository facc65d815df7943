"""Alembic migrations of kefu's SQL schema; run them with :func:`kefu.store.migrate.upgrade_database`."""

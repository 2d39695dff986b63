"""Storage: SQLAlchemy Core tables, named queries, Alembic migrations. Only this package issues SQL."""

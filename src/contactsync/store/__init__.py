"""Storage: SQLAlchemy Core tables, named queries and Alembic migrations. Only this package issues SQL."""

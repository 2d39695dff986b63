"""Column types shared by the tables and the migrations."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import UserDefinedType


class _PgJsonDocument(UserDefinedType[str]):
    """JSONB on PostgreSQL that travels as JSON text in both directions.

    The service layer serialises documents once (it hashes the same bytes), so binds are
    cast from text on the server and results are read back as text.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "JSONB"

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, postgresql.JSONB)

    def column_expression(self, colexpr: Any) -> Any:
        return sa.cast(colexpr, sa.Text)


#: A JSON document stored as text (SQLite) or JSONB (PostgreSQL); written and read as JSON text.
JsonDocument = sa.Text().with_variant(_PgJsonDocument(), "postgresql")

#: Integer primary keys: a rowid alias on SQLite, BIGINT identity on PostgreSQL.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Times are epoch milliseconds (UTC): compact, sortable, the same on every database.
Millis = sa.BigInteger

"""Shared model base: the database proxy, UTC timestamps and a portable JSON field."""

from __future__ import annotations

import datetime
import json
from typing import Any

import peewee

from meiqia import clock
from meiqia.db import database


def utcnow() -> datetime.datetime:
    """Return the current UTC time as a naive datetime (how every time is stored),
    from ``meiqia.clock`` (which tests may move)."""
    return clock.utcnow()


class JSONField(peewee.TextField):
    """JSON stored as text, so SQLite and PostgreSQL share one schema.

    Chinese text is kept readable in the column (``ensure_ascii=False``).
    """

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        if value is None or value == "":
            return None
        return json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False

    def to_dict(self) -> dict[str, Any]:
        """Plain field values; services shape what each audience may see."""
        return {name: getattr(self, name) for name in self._meta.fields}


class SchemaMigration(BaseModel):
    """One row per migration applied (see ``meiqia.migrations``)."""

    name = peewee.CharField(primary_key=True, max_length=128)
    applied_at = peewee.DateTimeField(default=utcnow)

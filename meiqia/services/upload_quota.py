"""Hourly quotas on anonymous uploads: per visitor and per team, count and bytes.

Why: a visitor token is free (anyone may open the widget), and each upload may
be 50 MB; without a quota one script fills the server's disk. Agents' uploads
are not counted (they are staff, with accounts).

The count is the ``attachment`` table itself: a visitor's uploads of the last
hour (a sliding window) are the rows he uploaded since then, so every process
and every server sees the same numbers, with or without Redis, and nothing can
drift from the truth. An upload is checked twice: before its body is read (its
declared size against what is left) and when it is recorded, inside the
transaction that records it, with the team's row locked (PostgreSQL; SQLite's
write transactions are serial already), so uploads racing each other cannot
together pass the limit. A refusal is a 429 saying which limit, in the user's
language, with ``Retry-After``: the seconds until enough of the hour's uploads
have aged out for this one.

Limits (config, 0 = none): ``UPLOAD_QUOTA_VISITOR_COUNT``,
``UPLOAD_QUOTA_VISITOR_BYTES``, ``UPLOAD_QUOTA_TEAM_COUNT``,
``UPLOAD_QUOTA_TEAM_BYTES`` (docs/security.md §9, docs/uploads.md).
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from flask import current_app

from meiqia.db import is_postgres
from meiqia.models import Attachment
from meiqia.models import Team
from meiqia.models.base import utcnow
from meiqia.services.errors import RateLimited
from meiqia.services.errors import TooLarge

WINDOW = datetime.timedelta(hours=1)


def _limits() -> dict[str, int]:
    config = current_app.config
    return {key: int(config.get(f"UPLOAD_QUOTA_{key}", 0) or 0)
            for key in ("VISITOR_COUNT", "VISITOR_BYTES", "TEAM_COUNT", "TEAM_BYTES")}


def _human(size: int) -> str:
    from meiqia.services.uploads import human_size

    return human_size(size)


def _wait(rows: list[tuple[datetime.datetime, int]], now: datetime.datetime,
          drop_count: int, drop_bytes: int) -> int:
    """Seconds until the oldest rows of the window that must leave it have left:
    at least ``drop_count`` of them and at least ``drop_bytes`` of their size."""
    dropped = freed = 0
    for created_at, size in rows:  # oldest first
        dropped += 1
        freed += size
        if dropped >= drop_count and freed >= drop_bytes:
            return max(1, math.ceil((created_at + WINDOW - now).total_seconds()))
    return int(WINDOW.total_seconds())


def _over(query: Any, count_limit: int, bytes_limit: int, size: int,
          now: datetime.datetime) -> tuple[str, int] | None:
    """Which limit an upload of ``size`` would pass (``count`` or ``bytes``) and the
    seconds until it would not; None when it fits."""
    rows = [(r.created_at, r.size) for r in query.select(Attachment.created_at, Attachment.size)
            .order_by(Attachment.created_at, Attachment.id)]
    used = sum(s for _, s in rows)
    over_count = bool(count_limit) and len(rows) + 1 > count_limit
    over_bytes = bool(bytes_limit) and used + size > bytes_limit
    if not (over_count or over_bytes):
        return None
    wait = _wait(rows, now, len(rows) + 1 - count_limit if over_count else 0,
                 used + size - bytes_limit if over_bytes else 0)
    return ("count" if over_count else "bytes"), wait


def check(team_id: int, visitor_id: int, size: int, lock: bool = False) -> None:
    """Raise RateLimited (429, Retry-After) if an upload of ``size`` bytes by the
    visitor would pass his or his team's hourly quota. ``lock``: inside the
    transaction that records the upload (serialises the team's visitor uploads)."""
    limits = _limits()
    if not any(limits.values()):
        return
    if lock and is_postgres():  # (SQLite's write transactions are serial already)
        Team.select(Team.id).where(Team.id == team_id).for_update().execute()
    now = utcnow()
    since = now - WINDOW
    recent = (Attachment.uploader_kind == "visitor") & (Attachment.created_at > since)
    for whose, query in (
            ("visitor", Attachment.select().where(recent, Attachment.team == team_id,
                                                  Attachment.uploader_id == visitor_id)),
            ("team", Attachment.select().where(recent, Attachment.team == team_id))):
        count_limit = limits[f"{whose.upper()}_COUNT"]
        bytes_limit = limits[f"{whose.upper()}_BYTES"]
        if bytes_limit and size > bytes_limit:
            raise TooLarge(f"file: uploads are limited to {_human(bytes_limit)} an hour; "
                           "this file is larger", "file")
        over = _over(query, count_limit, bytes_limit, size, now)
        if over is None:
            continue
        kind, wait = over
        minutes = math.ceil(wait / 60)
        if whose == "visitor" and kind == "count":
            raise RateLimited(f"upload quota: you may upload at most {count_limit} files an "
                              f"hour; try again in {minutes} minutes", "file", wait)
        if whose == "visitor":
            raise RateLimited(f"upload quota: you may upload at most {_human(bytes_limit)} "
                              f"an hour; try again in {minutes} minutes", "file", wait)
        if kind == "count":
            raise RateLimited(f"upload quota: this site takes at most {count_limit} files an "
                              f"hour from its visitors; try again in {minutes} minutes",
                              "file", wait)
        raise RateLimited(f"upload quota: this site takes at most {_human(bytes_limit)} an "
                          f"hour from its visitors; try again in {minutes} minutes",
                          "file", wait)

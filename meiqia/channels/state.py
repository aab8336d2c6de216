"""``host.state``: a channel's small key/value store per (team, channel), in the
database so every process (web and worker) sees the same access token, cursor
or UIDVALIDITY, and a restart keeps them."""

from __future__ import annotations

import datetime
from typing import Any

from meiqia.db import database
from meiqia.models import ChannelState
from meiqia.models.base import utcnow

MAX_KEY = 200
#: ``updated_at`` of a claim that is free (never taken, or released).
_FREE = datetime.datetime(1970, 1, 1)


class StateStore:
    """JSON values by key for one team's channel. ``set`` is an upsert, so two
    processes setting at once leave one row (the later value)."""

    def __init__(self, team_id: int, channel: str) -> None:
        self.team_id = team_id
        self.channel = channel

    def _check(self, key: str) -> str:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise ValueError(f"state key: 1-{MAX_KEY} characters")
        return key

    def get(self, key: str, default: Any = None) -> Any:
        row = ChannelState.get_or_none(ChannelState.team == self.team_id,
                                       ChannelState.channel == self.channel,
                                       ChannelState.key == self._check(key))
        return default if row is None or row.value is None else row.value

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON: str, number, bool, list, dict, None)."""
        with database.atomic():
            ChannelState.insert(team=self.team_id, channel=self.channel,
                                key=self._check(key), value=value,
                                updated_at=utcnow()).on_conflict(
                conflict_target=[ChannelState.team, ChannelState.channel, ChannelState.key],
                update={ChannelState.value: value, ChannelState.updated_at: utcnow()},
            ).execute()

    def delete(self, key: str) -> None:
        ChannelState.delete().where(ChannelState.team == self.team_id,
                                    ChannelState.channel == self.channel,
                                    ChannelState.key == self._check(key)).execute()

    def items(self) -> dict[str, Any]:
        return {row.key: row.value for row in list(ChannelState.select().where(
            ChannelState.team == self.team_id, ChannelState.channel == self.channel))}

    def claim(self, key: str, seconds: float) -> bool:
        """Take the lease ``key`` for ``seconds``: True for exactly one caller
        among every process at a time, until ``release`` or the time is up (a
        process that died holding it). For work only one process should do at
        once, such as fetching a new access token, which invalidates the old
        one. The lease is the row's ``updated_at``, taken by a conditional
        UPDATE (its row count says who won)."""
        key = self._check(f"lease:{key}")
        ChannelState.insert(team=self.team_id, channel=self.channel, key=key, value=None,
                            updated_at=_FREE).on_conflict_ignore().execute()
        now = utcnow()
        return bool(ChannelState.update(updated_at=now).where(
            ChannelState.team == self.team_id, ChannelState.channel == self.channel,
            ChannelState.key == key,
            ChannelState.updated_at <= now - datetime.timedelta(seconds=seconds)).execute())

    def release(self, key: str) -> None:
        """Give the lease ``key`` back (a no-op when it is not held)."""
        ChannelState.update(updated_at=_FREE).where(
            ChannelState.team == self.team_id, ChannelState.channel == self.channel,
            ChannelState.key == self._check(f"lease:{key}")).execute()

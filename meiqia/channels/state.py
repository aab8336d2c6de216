"""``host.state``: a channel's small key/value store per (team, channel), in the
database so every process (web and worker) sees the same access token, cursor
or UIDVALIDITY, and a restart keeps them."""

from __future__ import annotations

import datetime
import secrets
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
        #: The leases this store holds: key → the end it set (``claim``).
        self._leases: dict[str, datetime.datetime] = {}

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
        among every process at a time, until that caller's ``release`` or its
        ``seconds`` are up (a process that died holding it). For work only one
        process should do at once, such as fetching a new access token, which
        invalidates the old one.

        The row's ``updated_at`` is the lease's end, set by the holder; a
        conditional UPDATE takes it only once it has passed (its row count says
        who won). The end carries up to a millisecond at random and this store
        keeps it, so ``release`` frees only the lease this store took."""
        full = self._check(f"lease:{key}")
        ChannelState.insert(team=self.team_id, channel=self.channel, key=full, value=None,
                            updated_at=_FREE).on_conflict_ignore().execute()
        now = utcnow()
        until = now + datetime.timedelta(seconds=max(0.001, float(seconds)),
                                         microseconds=secrets.randbelow(1000))
        taken = ChannelState.update(updated_at=until).where(
            ChannelState.team == self.team_id, ChannelState.channel == self.channel,
            ChannelState.key == full, ChannelState.updated_at <= now).execute()
        if taken:
            self._leases[full] = until
        return bool(taken)

    def release(self, key: str) -> None:
        """Give back the lease ``key`` if this store holds it (a no-op otherwise:
        another holder's lease, or one that ran out and was taken since)."""
        full = self._check(f"lease:{key}")
        until = self._leases.pop(full, None)
        if until is None:
            return
        ChannelState.update(updated_at=_FREE).where(
            ChannelState.team == self.team_id, ChannelState.channel == self.channel,
            ChannelState.key == full, ChannelState.updated_at == until).execute()

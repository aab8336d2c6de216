"""Two steps of the security audit (issue 15): the webhook switch goes, the upload
quotas get their indexes.

Webhook sinks lose their ``allow_private_addresses`` switch (§6).

Any team admin could switch it on and point a webhook at the server's own
network. Whether outbound connections may reach private addresses is now the
operator's decision for the whole instance (``OUTBOUND_ALLOWED_NETWORKS``,
``OUTBOUND_ALLOW_PRIVATE``; docs/security.md §6), so the key goes from every
stored sink configuration (the sink's schema no longer accepts it). A sink that
had it on is named in the output, so the operator knows which network to allow;
until then its deliveries fail and wait to be retried.

The hourly upload quotas (§9, ``services/upload_quota.py``) count a visitor's
and a team's uploads of the last hour: two indexes on ``attachment`` make that a
range read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

KEY = "allow_private_addresses"


def up(migrator, db, echo: Callable[[str], None]) -> None:  # noqa: ANN001 - peewee protocol
    migrator.migrate(
        migrator.add_index("attachment", ("uploader_kind", "uploader_id", "created_at"), False),
        migrator.add_index("attachment", ("team_id", "uploader_kind", "created_at"), False),
    )
    _drop_private_switch(db, echo)


def _drop_private_switch(db, echo: Callable[[str], None]) -> None:  # noqa: ANN001
    rows = db.execute_sql("SELECT id, team_id, config FROM ticket_sink").fetchall()
    for sink_id, team_id, raw in rows:
        try:
            config = json.loads(raw) if raw else {}
        except ValueError:
            continue
        if not isinstance(config, dict) or KEY not in config:
            continue
        was_on = bool(config.pop(KEY))
        db.execute_sql("UPDATE ticket_sink SET config = %s WHERE id = %s"
                       if db.param == "%s" else
                       "UPDATE ticket_sink SET config = ? WHERE id = ?",
                       (json.dumps(config, ensure_ascii=False, separators=(",", ":")),
                        sink_id))
        if was_on:
            echo(f"ticket sink {sink_id} (team {team_id}) allowed private addresses: "
                 "allow its network with OUTBOUND_ALLOWED_NETWORKS if it is meant to "
                 "reach one")

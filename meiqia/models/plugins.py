"""What admins and the circuit breaker decided about each plugin (the Plugins page).

One row per plugin and scope: ``team_id`` 0 is the whole server (the breaker's
suspension and the recent errors live there, since a plugin that hangs hangs
for every team), any other ``team_id`` is one team's switch (an admin turned
the plugin off for his team). Every web process and worker reads these rows
every few seconds (``plugin_runtime.state``), so a decision holds across
processes and restarts.
"""

from __future__ import annotations

import peewee

from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow

#: ``team_id`` of the server-wide row of a plugin.
SERVER = 0


class PluginState(BaseModel):
    plugin = peewee.CharField(max_length=200)
    #: 0: the whole server; else the team whose admin decided.
    team_id = peewee.IntegerField(default=SERVER)
    #: Turned off by an admin (for his team, or for the server on row 0).
    disabled = peewee.BooleanField(default=False)
    #: Suspended by the circuit breaker until then (UTC); only on row 0.
    suspended_until = peewee.DateTimeField(null=True)
    #: Times the breaker opened since the last reset (row 0).
    trips = peewee.IntegerField(default=0)
    #: The last failures, newest last: ``[{"at", "hook", "kind", "error"}]`` (row 0).
    recent_errors = JSONField(default=list)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("plugin", "team_id"), True),)

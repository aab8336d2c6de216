"""An event observer: every event (message created, conversation ended, ticket
changed…) appended as one JSON line to a file a data pipeline picks up.

``track_event`` is a notification: it runs on the plugin's own threads after
the change is committed and nobody waits for it, but a call longer than its
budget (5 s) counts as a timeout, and a plugin that keeps failing is suspended
by the circuit breaker. So it does only quick, local work; slow work (an HTTP
call to an analytics service) belongs in a job (``meiqia.jobs.enqueue``).
Configure in ``instance/config.py``:

    EVENT_LOG_PATH = "/var/log/meiqia/events.jsonl"
    EVENT_LOG_NAMES = ["message.created", "conversation.ended"]   # optional filter

Without ``EVENT_LOG_PATH`` the plugin does nothing. Message bodies are not in
events (only ids), so the file holds no customer text.
"""

from __future__ import annotations

import json
import threading

from flask import current_app

from meiqia.hookspecs import hookimpl

__version__ = "1.0.0"

#: One writer at a time: the plugin's threads run calls side by side.
_lock = threading.Lock()


@hookimpl
def track_event(event: dict) -> None:
    path = current_app.config.get("EVENT_LOG_PATH")
    if not path:
        return
    names = current_app.config.get("EVENT_LOG_NAMES")
    if names and event["name"] not in names:
        return
    line = json.dumps(event, ensure_ascii=False, sort_keys=True)
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")

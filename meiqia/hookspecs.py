"""Every plugin hook of meiqia (DESIGN §7): its docstring is its documentation.

Hooks are called with keyword arguments only. At run time each call goes through
``meiqia.plugin_runtime``: within its time budget, on the plugin's own threads,
failures logged with the plugin's and the hook's name and skipped (privacy
hooks fail closed), so a plugin never breaks a conversation. Conversations,
messages, visitors and agents reach a plugin as the frozen views of
``meiqia.plugin_api`` (``PluginConversation``, ``PluginMessage``,
``PluginVisitor``, ``PluginAgent``), never as database rows.
``docs/plugins.md`` carries each docstring word for word under a heading that
is the hook's exact signature (with examples around them), and
``tests/unit/test_docs.py`` fails when the two differ, so change both together.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("meiqia")
hookimpl = pluggy.HookimplMarker("meiqia")


# --- lifecycle -------------------------------------------------------------------


@hookspec
def startup(app: Any) -> None:
    """Called once by ``create_app``, with the app configured, before the plugins'
    blueprints and channels are registered.

    Use it to validate the plugin's own configuration or to warm caches. If it
    raises, the plugin is disabled (not called again, logged with its name and
    the error) and the application starts without it; with
    ``PLUGIN_STARTUP_FAILURE = "refuse"`` start-up stops instead, naming the
    plugin. Returns nothing.
    """


@hookspec
def register_blueprints(app: Any) -> list[Any] | None:
    """Called once by ``create_app``; return Flask blueprints to register.

    Return a list (or None). Nothing puts a plugin's routes under a prefix:
    give each blueprint a ``url_prefix`` of its own (``Blueprint("crm",
    __name__, url_prefix="/plugins/crm")``); one without serves its routes
    at the site root (``/hello``). On a clash meiqia's own routes win (they
    are registered first): a plugin's ``GET /healthz`` is never reached. A
    blueprint's name must be its own: one already registered (meiqia's
    ``api``, another plugin's) stops start-up with Flask's ValueError.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Called when the ``meiqia`` command is built; add click commands to ``cli``.

    Returns nothing: call ``cli.add_command(...)`` or use ``@cli.command()``.
    A command added here (a group with its subcommands too) runs as meiqia's
    own commands do: inside the application's context, made from
    ``instance/config.py`` and ``MEIQIA_*`` like the server's, with a database
    connection, so ``current_app``, the models and ``meiqia.channels.host_for``
    work in it, and Flask's ``with_appcontext`` finds the app there. The app
    is made when the command runs, not for ``--help``.
    """


# --- channels ----------------------------------------------------------------------


@hookspec
def register_channels(app: Any) -> list[type] | None:
    """Called once at start-up; return channel classes.

    A channel class (``meiqia.channels.Channel``; subclassing is optional) has
    ``type`` (a unique slug such as ``"email"``), ``name`` (a string or
    ``{"zh-CN": ..., "en": ...}``), ``capabilities`` (a subset of
    ``typing_preview``, ``read_receipts``, ``rating``, ``attachments``: what it
    lacks is hidden in its conversations) and ``configuration_schema()`` (JSON
    Schema of the admin's form; write-only fields listed under ``"secret"``; a
    field's ``title`` and ``description`` and each label of ``enumNames`` a
    string or ``{"zh-CN": ..., "en": ...}``, as ``name``). Each
    team that enables it gets an instance, ``cls(config, host)``, with its
    validated settings and a ``ChannelHost``. Inbound, the channel calls
    ``meiqia.channels.receive(host, external_user_id, text, ...)``, which runs
    what the widget runs (bot, handover, routing, queue, tickets, hooks) and
    stores an external message id once. Outbound, the host calls
    ``deliver(conversation, message)`` from a job for every message the visitor
    should see, retrying with backoff; it returns the far side's message id (or
    None) and raises ``DeliveryError(reason, retry=True)`` on failure. Optional:
    ``test_connection()`` (the admin's button), ``start()`` and ``stop()``
    (background work such as a poller), inbound endpoints through
    ``register_blueprints``. The web widget is one. Return a list of classes (or
    None). How to write one: "Writing a channel" in docs/plugins.md.
    """


# --- bot ---------------------------------------------------------------------------


@hookspec
def register_answerers(app: Any) -> list[Any] | None:
    """Called once at start-up; return answerer objects.

    Each process calls it once as it makes the application, with the Flask
    application itself (as ``register_channels``), before any question. An
    answerer has ``name``, an optional ``priority`` (an int, default 0) and
    ``answer(question, conversation)`` returning a list of candidates: dicts
    with ``entry_id`` (text), ``answer`` (text, not blank), ``score`` (a
    number, a confidence in [0, 1]) and optionally ``question`` (text). A
    candidate of any other shape (``{"text": ...}`` or ``404`` for an answer)
    is dropped, and the answer counts as a failure of the plugin (logged, on
    the Plugins page, held against the breaker). The bot merges every
    answerer's candidates: one per ``entry_id`` (the best score), best score
    first, the higher ``priority`` first between equal scores; the team's
    thresholds then apply to the first candidate, whichever answerer gave it.
    The knowledge-base bot is one (priority 0). The live bot, ``meiqia bot
    ask`` and ``meiqia bot eval`` ask the same answerers alike: "How the bot
    merges answerers" in docs/plugins.md.
    """


# --- UI ----------------------------------------------------------------------------


@hookspec
def sidebar_panels(
    conversation: Any, visitor: Any, actor: Any, request: Any
) -> list[dict] | None:
    """Called when an agent opens a conversation; return iframe panels.

    Each panel is a dict with ``name``, ``url`` (http or https) and optional
    ``height`` (pixels), ``position`` (lower first) and ``secret`` (the key the
    token is signed with; share it with the plugin's server). The host appends
    ``token=<signed, short-lived token>`` describing the visitor and the
    conversation, so the plugin's server can trust it, and sandboxes the iframe.
    The built-in ``iframe_sidebar`` returns the team's enabled iframe plugins.
    How a plugin's server verifies the token: "Sidebar iframe panels" in
    docs/plugins.md. An answer that is not a list, or a panel without a name
    or whose ``url`` is not http(s) (``javascript:``, missing), is a failure of
    the plugin (logged, on the Plugins page, held against the breaker), naming
    each panel dropped and why; its other panels are still shown.
    """


@hookspec
def menu_links(actor: Any, request: Any) -> list[dict] | None:
    """Called when the top bar of a signed-in page is drawn; return ``{"href",
    "label"}`` dicts.

    The links are shown in the top bar of every page that has one: the
    workspace (``/workspace``), the dashboard, history, tickets, API tokens
    and every admin page (``/admin``, ``/admin/plugins`` …), after meiqia's own
    entries; at most 8, external ones opening in a new tab. Return only links
    ``actor`` may use (or None). ``href`` is an http(s) URL or a path of this
    site, ``label`` text (shown as text, never HTML). An answer that is not a
    list, or a link that is not such a dict (a ``javascript:`` href), is a
    failure of the plugin (logged, on the Plugins page, held against the
    breaker), naming each link dropped and why; its other links are still shown.
    """


# --- tickets -----------------------------------------------------------------------


@hookspec
def register_ticket_sinks(app: Any) -> list[type] | None:
    """Called once at start-up; return ticket sink classes.

    A sink class has ``type`` (slug), ``name`` (a string or ``{"zh-CN": ..., "en":
    ...}``, as a channel's: each admin reads his language's), ``configuration_schema()`` (JSON
    Schema that drives the admin form; secret fields listed under ``"secret"``; a
    field's ``title`` and ``description`` worded per language as a channel's),
    optional ``validate_config(config)`` (a method like the others, or a
    staticmethod or classmethod; raise ``ValueError("why")`` for a 422 in your
    words, anything else it raises is a 422 naming it), ``create_ticket(ticket,
    config)`` and ``update_ticket(ticket, config, changes)``, where ``ticket`` is the JSON
    payload ``{"event", "ticket": {...}, "changes", "delivery_id",
    "idempotency_key"}`` (public side only: no internal notes). Raise to have the
    delivery retried. A delivery may be sent more than once (at least once, never
    lost): pass ``idempotency_key`` on so the receiver can drop a repeat. Admins configure
    instances; each delivery runs as a job with retries and backoff, and
    failures are shown to admins. Webhook and email are built in. A sink in one
    file: "Ticket sinks" in docs/plugins.md.
    """


# --- routing -----------------------------------------------------------------------


@hookspec(firstresult=True)
def assign_agent(conversation: Any, candidates: list[Any]) -> Any | None:
    """Called when a conversation needs a handler; choose one of ``candidates``.

    ``candidates`` are the team's online agents below their limit, already
    ordered least-loaded first with round-robin ties. Return one of them, or
    None to let the next implementation decide. Anything else (a name, an agent
    who is not one of ``candidates``) is a failure of the plugin, counted,
    logged and held against the breaker like raising, and the next
    implementation decides (in the end the built-in policy). The built-in
    policy returns the first. Stops at first non-None result.
    """


# --- messages and events ------------------------------------------------------------


@hookspec
def before_message_saved(message: dict, conversation: Any) -> dict | None:
    """Called before a message is stored; may redact or reject it.

    ``message`` is a dict with ``sender_kind``, ``kind``, ``body``, ``payload``
    and ``visibility``. Return a dict of fields to change, ``body`` (text) and
    ``payload`` (a dict) (e.g. a redacted ``body``; the other fields may come
    back only unchanged, so ``{**message, "body": ...}`` is fine),
    ``{"reject": "reason"}`` to refuse the message with that reason, or None to
    leave it as it is. Implementations run one after the other, each given the
    message as the ones before changed it, so every plugin's changes are kept:
    ``tryfirst`` ones first, ``trylast`` ones last, the others in the order of
    their plugins' names (as ``meiqia plugins`` lists them); a rejection stops
    there. A privacy hook: if it raises, runs past its budget, is suspended or
    returns anything else (not a dict, a ``body`` that is not text, a changed
    ``visibility`` or ``sender_kind``, an unknown key such as a misspelt
    ``"bdy"``: a failure of the plugin, counted and logged), a visitor's or
    agent's message is masked or refused (``PRIVACY_FALLBACK``), never stored
    unchecked. While one is on for a team, a visitor's typing preview reaches
    its agents without the text.
    """


@hookspec
def track_event(event: dict) -> None:
    """Called after a change is committed: message created, conversation ended,
    ticket changed, and so on.

    ``event`` has ``name`` (e.g. ``"message.created"``), ``team_id``, ``at`` (ISO
    UTC) and event-specific ids. Returns nothing. A notification: it runs on the
    plugin's own threads and nobody waits for it; a call running past its budget
    counts as a timeout (enqueue a job for slow work).
    """


# --- authentication ---------------------------------------------------------------


@hookspec(firstresult=True)
def actor_from_request(request: Any) -> Any | None:
    """Called for each API request that has no session; return the agent making it.

    Use it for single sign-on or custom tokens. The built-in implementation
    reads ``Authorization: Bearer <api token>``. Stops at first non-None result.
    Set ``agent.token_scope`` (``read``, ``conversations`` or ``admin``) on the
    agent returned to limit what the request may do; without it the request may
    do what the agent may (``admin``). Such requests never manage API tokens or
    sessions, nor change a password or email (docs/security.md §8). Anything
    but None or an active agent row with such a scope (an email, a
    ``PluginAgent``, a deactivated agent) is a failure of the plugin (logged,
    on the Plugins page, held against the breaker) and the next implementation
    (in the end the API tokens) decides.
    """

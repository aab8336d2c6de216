"""The authorisation matrix: every route of the application and who may use it.

``ROUTES`` maps ``(METHOD, rule)`` (as in ``app.url_map``) to ``(kind, agent)``:

kind
    For API routes, the ``auth`` the route declares (``none``, ``agent``,
    ``admin``, ``visitor``, ``agent_or_visitor``; checked against the OpenAPI
    document). For the rest: ``public`` (anyone), ``page`` (agents; anonymous
    is sent to the login page), ``admin-page`` (admins; other agents get 404),
    ``form`` (a cookie-authenticated form post, CSRF-checked), ``ws``.
agent
    What an agent with ``scope=self`` gets when the path names the admin's
    conversation, ticket, export, job, attachment, token, personal quick reply
    or visitor: ``404`` (it does not exist for him), ``403`` (admins only), or
    ``ok`` (his own or team-wide data; lists are checked for leaks separately),
    ``filtered`` (200 with an empty list: everything it would list is outside).

A route missing here fails ``test_every_route_has_a_matrix_entry``: whoever
adds a route decides, here, who may use it.
"""

from __future__ import annotations

ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    # --- pages ---------------------------------------------------------------------------
    ("GET", "/"): ("page", "ok"),
    ("GET", "/login"): ("public", "ok"),
    ("POST", "/login"): ("form", "ok"),
    ("GET", "/register"): ("public", "ok"),
    ("POST", "/register"): ("form", "ok"),
    ("POST", "/logout"): ("form", "ok"),
    ("GET", "/healthz"): ("public", "ok"),
    # Off (404) unless METRICS_TOKEN is set, then that bearer token only
    # (tests/api/test_metrics.py).
    ("GET", "/metrics"): ("public", "ok"),
    ("GET", "/widget.js"): ("public", "ok"),
    ("GET", "/widget/frame"): ("public", "ok"),
    ("GET", "/demo"): ("public", "ok"),
    ("GET", "/lang/<code>"): ("public", "ok"),
    ("GET", "/workspace"): ("page", "ok"),
    ("GET", "/dashboard"): ("page", "ok"),
    ("GET", "/history"): ("page", "ok"),
    ("GET", "/history/exports"): ("page", "ok"),
    ("GET", "/tickets"): ("page", "ok"),
    ("GET", "/tickets/<int:ticket_id>"): ("page", "ok"),
    ("GET", "/tokens"): ("page", "ok"),
    ("GET", "/admin/"): ("admin-page", "404"),
    ("GET", "/admin/settings"): ("admin-page", "404"),
    ("GET", "/admin/agents"): ("admin-page", "404"),
    ("GET", "/admin/groups"): ("admin-page", "404"),
    ("GET", "/admin/conversation-rules"): ("admin-page", "404"),
    ("GET", "/admin/iframe-plugins"): ("admin-page", "404"),
    ("GET", "/admin/knowledge"): ("admin-page", "404"),
    ("GET", "/admin/quick-replies"): ("admin-page", "404"),
    ("GET", "/admin/ticket-sinks"): ("admin-page", "404"),
    ("GET", "/admin/channels"): ("admin-page", "404"),
    ("GET", "/admin/plugins"): ("admin-page", "404"),
    ("GET", "/admin/unrecognised"): ("admin-page", "404"),
    ("GET", "/favicon.svg"): ("public", "ok"),
    ("GET", "/favicon.ico"): ("public", "ok"),
    # The secret is in the path; unknown, used or expired: 404 (tests/api/test_password_reset.py).
    ("GET", "/reset-password/<token>"): ("public", "ok"),
    ("POST", "/reset-password/<token>"): ("form", "ok"),
    ("GET", "/ws/agent"): ("ws", "ok"),
    ("GET", "/ws/visitor"): ("ws", "ok"),
    # --- accounts ------------------------------------------------------------------------
    ("POST", "/api/v1/auth/login"): ("none", "ok"),
    ("POST", "/api/v1/auth/register"): ("none", "ok"),
    ("POST", "/api/v1/auth/logout"): ("agent", "ok"),
    ("POST", "/api/v1/auth/sessions/end-all"): ("agent", "ok"),
    ("GET", "/api/v1/me"): ("agent", "ok"),
    ("GET", "/api/v1/agents"): ("agent", "ok"),
    ("POST", "/api/v1/agents"): ("admin", "403"),
    ("GET", "/api/v1/agents/<int:agent_id>"): ("agent", "ok"),
    ("PATCH", "/api/v1/agents/<int:agent_id>"): ("agent", "403"),
    ("POST", "/api/v1/agents/<int:agent_id>/password-reset"): ("admin", "403"),
    ("POST", "/api/v1/auth/password-reset"): ("none", "ok"),
    ("GET", "/api/v1/setup"): ("admin", "403"),
    ("POST", "/api/v1/setup/dismiss"): ("admin", "403"),
    ("GET", "/api/v1/groups"): ("agent", "ok"),
    ("POST", "/api/v1/groups"): ("admin", "403"),
    ("PATCH", "/api/v1/groups/<int:group_id>"): ("admin", "403"),
    ("DELETE", "/api/v1/groups/<int:group_id>"): ("admin", "403"),
    ("GET", "/api/v1/tokens"): ("agent", "ok"),
    ("POST", "/api/v1/tokens"): ("agent", "ok"),
    ("DELETE", "/api/v1/tokens/<int:token_id>"): ("agent", "404"),
    ("GET", "/api/v1/team"): ("agent", "ok"),
    ("PATCH", "/api/v1/team"): ("admin", "403"),
    ("GET", "/api/v1/openapi.json"): ("none", "ok"),
    # --- bot and knowledge ---------------------------------------------------------------
    ("POST", "/api/v1/bot/ask"): ("agent", "ok"),
    ("GET", "/api/v1/bot/unrecognised"): ("admin", "403"),
    ("POST", "/api/v1/bot/unrecognised/dismiss"): ("admin", "403"),
    ("POST", "/api/v1/bot/unrecognised/resolve"): ("admin", "403"),
    ("GET", "/api/v1/knowledge"): ("agent", "ok"),
    ("POST", "/api/v1/knowledge"): ("admin", "403"),
    ("GET", "/api/v1/knowledge/<int:entry_id>"): ("agent", "ok"),
    ("PATCH", "/api/v1/knowledge/<int:entry_id>"): ("admin", "403"),
    ("DELETE", "/api/v1/knowledge/<int:entry_id>"): ("admin", "403"),
    ("GET", "/api/v1/knowledge/export"): ("admin", "403"),
    ("POST", "/api/v1/knowledge/import"): ("admin", "403"),
    ("POST", "/api/v1/knowledge/reindex"): ("admin", "403"),
    ("GET", "/api/v1/knowledge/calibration"): ("admin", "403"),
    # --- conversations -------------------------------------------------------------------
    ("GET", "/api/v1/conversations"): ("agent", "ok"),
    ("GET", "/api/v1/conversations/<int:conversation_id>"): ("agent", "404"),
    ("GET", "/api/v1/conversations/<int:conversation_id>/messages"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/messages"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/end"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/transfer"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/rating-invite"): ("agent", "404"),
    ("PATCH", "/api/v1/conversations/<int:conversation_id>/summary"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/read"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/mentions/seen"): ("agent", "404"),
    ("GET", "/api/v1/conversations/<int:conversation_id>/suggestions"): ("agent", "404"),
    ("GET", "/api/v1/conversations/<int:conversation_id>/sidebar-panels"): ("agent", "404"),
    ("POST", "/api/v1/conversations/<int:conversation_id>/uploads"): ("agent", "404"),
    ("GET", "/api/v1/attachments/<key>"): ("agent_or_visitor", "404"),
    ("PATCH", "/api/v1/visitors/<int:visitor_id>"): ("agent", "404"),
    # a visitor outside the scope is no visitor, as for his card (PATCH above)
    ("GET", "/api/v1/visitors/<int:visitor_id>/conversations"): ("agent", "404"),
    ("GET", "/api/v1/visitors/<int:visitor_id>/tickets"): ("agent", "404"),
    ("GET", "/api/v1/quick-replies"): ("agent", "ok"),
    ("POST", "/api/v1/quick-replies"): ("agent", "ok"),
    ("GET", "/api/v1/quick-replies/search"): ("agent", "ok"),
    ("PATCH", "/api/v1/quick-replies/<int:reply_id>"): ("agent", "404"),
    ("DELETE", "/api/v1/quick-replies/<int:reply_id>"): ("agent", "404"),
    # --- history, exports, jobs, dashboard -----------------------------------------------
    ("GET", "/api/v1/history"): ("agent", "ok"),
    ("PUT", "/api/v1/history/columns"): ("agent", "ok"),
    ("GET", "/api/v1/conversation-rules"): ("agent", "ok"),
    ("PUT", "/api/v1/conversation-rules"): ("admin", "403"),
    ("POST", "/api/v1/history/exports"): ("agent", "ok"),
    ("GET", "/api/v1/history/exports"): ("agent", "ok"),
    ("GET", "/api/v1/history/exports/<int:export_id>"): ("agent", "404"),
    ("DELETE", "/api/v1/history/exports/<int:export_id>"): ("agent", "404"),
    ("GET", "/api/v1/history/exports/<int:export_id>/file"): ("agent", "404"),
    ("GET", "/api/v1/jobs/<job_id>"): ("agent", "404"),
    ("GET", "/api/v1/dashboard"): ("agent", "ok"),
    # --- tickets and sinks ---------------------------------------------------------------
    ("GET", "/api/v1/tickets"): ("agent", "ok"),
    ("POST", "/api/v1/tickets"): ("agent", "ok"),
    ("GET", "/api/v1/tickets/<int:ticket_id>"): ("agent", "404"),
    ("PATCH", "/api/v1/tickets/<int:ticket_id>"): ("agent", "404"),
    ("POST", "/api/v1/tickets/<int:ticket_id>/comments"): ("agent", "404"),
    ("GET", "/api/v1/ticket-sinks"): ("admin", "403"),
    ("POST", "/api/v1/ticket-sinks"): ("admin", "403"),
    ("GET", "/api/v1/ticket-sinks/types"): ("admin", "403"),
    ("GET", "/api/v1/ticket-sinks/<int:sink_id>"): ("admin", "403"),
    ("PATCH", "/api/v1/ticket-sinks/<int:sink_id>"): ("admin", "403"),
    ("DELETE", "/api/v1/ticket-sinks/<int:sink_id>"): ("admin", "403"),
    ("GET", "/api/v1/ticket-sinks/deliveries"): ("admin", "403"),
    ("POST", "/api/v1/ticket-sinks/deliveries/<int:delivery_id>/retry"): ("admin", "403"),
    # Channels (issue 16): admins configure; agents see and retry their conversations'
    # deliveries (the admin's conversation and delivery do not exist for him).
    ("GET", "/api/v1/channels"): ("admin", "403"),
    ("GET", "/api/v1/channels/<slug>"): ("admin", "403"),
    ("PUT", "/api/v1/channels/<slug>"): ("admin", "403"),
    ("POST", "/api/v1/channels/<slug>/test"): ("admin", "403"),
    ("GET", "/api/v1/conversations/<int:conversation_id>/deliveries"): ("agent", "404"),
    ("POST", "/api/v1/channel-deliveries/<int:delivery_id>/retry"): ("agent", "404"),
    ("GET", "/api/v1/plugins"): ("admin", "403"),
    ("PATCH", "/api/v1/plugins/<name>"): ("admin", "403"),
    ("POST", "/api/v1/plugins/<name>/reset"): ("admin", "403"),
    ("GET", "/api/v1/iframe-plugins"): ("admin", "403"),
    ("POST", "/api/v1/iframe-plugins"): ("admin", "403"),
    ("GET", "/api/v1/iframe-plugins/<int:plugin_id>"): ("admin", "403"),
    ("PATCH", "/api/v1/iframe-plugins/<int:plugin_id>"): ("admin", "403"),
    ("DELETE", "/api/v1/iframe-plugins/<int:plugin_id>"): ("admin", "403"),
    ("POST", "/api/v1/iframe-plugins/<int:plugin_id>/rotate-secret"): ("admin", "403"),
    # --- the widget (visitor token) ------------------------------------------------------
    ("POST", "/api/v1/widget/session"): ("none", "ok"),
    ("POST", "/api/v1/widget/token"): ("none", "ok"),
    ("GET", "/api/v1/widget/conversations/<int:conversation_id>/messages"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/messages"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/human"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/read"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/rating"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/uploads"): ("visitor", "ok"),
    ("GET", "/api/v1/widget/ticket-form"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/tickets"): ("visitor", "ok"),
    ("GET", "/api/v1/widget/tickets"): ("visitor", "ok"),
    ("GET", "/api/v1/widget/tickets/<int:ticket_id>"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/tickets/<int:ticket_id>/read"): ("visitor", "ok"),
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/ticket-uploads"):
        ("visitor", "ok"),
    # --- channels' inbound endpoints (signed by the far side, no session) ---------------
    # The WeChat server URL: WeChat's signature (token) decides, and a team that has
    # not enabled the channel is a 404 (tests/channels/test_wechat.py).
    ("GET", "/channels/wechat/<team_key>/"): ("public", "ok"),
    ("POST", "/channels/wechat/<team_key>/"): ("public", "ok"),
}

#: Valid bodies for the writes the out-of-scope agent tries, so that a 404 comes
#: from the scope check, not from validation.
BODIES: dict[tuple[str, str], dict] = {
    ("POST", "/api/v1/widget/tickets/<int:ticket_id>/read"): {"up_to": 1},
    ("POST", "/api/v1/conversations/<int:conversation_id>/messages"): {
        "body": "越权", "client_msg_id": "authz-a"},
    ("POST", "/api/v1/conversations/<int:conversation_id>/transfer"): {"agent_id": "{li}"},
    ("PATCH", "/api/v1/conversations/<int:conversation_id>/summary"): {"summary": "越权"},
    ("POST", "/api/v1/conversations/<int:conversation_id>/read"): {"up_to": 1},
    ("PATCH", "/api/v1/visitors/<int:visitor_id>"): {"note": "越权"},
    ("PATCH", "/api/v1/quick-replies/<int:reply_id>"): {"body": "越权"},
    ("PATCH", "/api/v1/tickets/<int:ticket_id>"): {"priority": "high"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/comments"): {"body": "越权"},
    ("PATCH", "/api/v1/agents/<int:agent_id>"): {"max_concurrent": 50},
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/messages"): {
        "body": "越权", "client_msg_id": "authz-v"},
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/read"): {"up_to": 1},
    ("POST", "/api/v1/widget/conversations/<int:conversation_id>/rating"): {"rating": "good"},
}

"""Routing: customers tagged VIP on their card go to the senior agents.

``assign_agent`` gets the conversation waiting next and the free agents,
already in the fair order (least-loaded first, round-robin ties). It returns
one of them, or None to leave the choice to the default routing. It runs
before routing takes the team's lock and within its budget (0.5 s by default),
so it must be quick: no calls to other servers here. Configure in
``instance/config.py``:

    VIP_TAG = "VIP"                                   # the card's tag (default)
    VIP_AGENT_EMAILS = ["senior@example.com", "lead@example.com"]

A VIP whose senior agents are all busy gets whoever is free: returning None
leaves the choice to the default routing.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from meiqia.hookspecs import hookimpl

__version__ = "1.0.0"


@hookimpl
def assign_agent(conversation: Any, candidates: list[Any]) -> Any | None:
    seniors = {email.lower() for email in current_app.config.get("VIP_AGENT_EMAILS", ())}
    if not seniors:
        return None
    # ``conversation`` is a PluginConversation; its ``visitor`` (a PluginVisitor)
    # is read on first use. ``candidates`` are PluginAgents.
    visitor = conversation.visitor
    if visitor is None or current_app.config.get("VIP_TAG", "VIP") not in visitor.tags:
        return None
    for agent in candidates:  # the fair order: the least-loaded senior first
        if agent.email.lower() in seniors:
            return agent
    return None

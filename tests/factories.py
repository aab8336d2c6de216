"""Test factories: teams, agents, visitors (with a visit), conversations with messages.

Written straight to the models so history, figures and dashboard tests can build
exact situations (times, senders, internal notes) that the realtime path would
take minutes to produce. Use the API (tests.helpers.ApiClient) for what is under
test; use these for the data around it.

    team = make_team()
    li = make_agent(team, name="李客服", scope="self")
    visitor = make_visitor(team, name="张三", phone="13800138000", source="search_engine")
    conv = make_conversation(team, visitor, handler=li, ended_at=T0, messages=[
        ("visitor", "退款还没到账", 0), ("agent", "马上查", 30),
        ("agent", "内部：找财务", 40, "internal")])

A message tuple is ``(sender_kind, body, when)`` with an optional fourth item,
the visibility (``public`` by default). ``when`` is seconds after the
conversation's start or a datetime. ``ended_at`` given (and ``status`` not)
means an ended conversation whose figures are computed and stored, as
``end_conversation`` would.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable
from typing import Any

from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import ConversationRule
from meiqia.models import Group
from meiqia.models import Message
from meiqia.models import Team
from meiqia.models import Visit
from meiqia.models import Visitor
from meiqia.models.base import utcnow

_seq = itertools.count(1)

MessageSpec = tuple[Any, ...]


def _id(thing: Any) -> int | None:
    if thing is None:
        return None
    if isinstance(thing, dict):
        return int(thing["id"])
    return int(getattr(thing, "id", thing))


def make_team(name: str = "测试团队", timezone: str = "Asia/Shanghai",
              grades: list[dict[str, Any]] | None = None) -> Team:
    team = Team.create(name=name, timezone=timezone)
    if grades is not None:
        ConversationRule.create(team=team, grades=grades)
    return team


def make_group(team: Any, name: str = "售后组") -> Group:
    return Group.create(team=_id(team), name=name)


def make_agent(team: Any, name: str = "李客服", role: str = "agent", scope: str = "self",
               **fields: Any) -> Agent:
    """An agent who cannot log in (no usable password); log in through the API instead."""
    n = next(_seq)
    return Agent.create(team=_id(team), name=name, role=role, scope=scope,
                        email=fields.pop("email", f"agent{n}@example.com"),
                        password_hash=fields.pop("password_hash", "!"), **fields)


def make_visitor(team: Any, name: str = "张三", *, phone: str = "", note: str = "",
                 tags: list[str] | None = None, email: str = "", visit: bool = True,
                 **visit_fields: Any) -> Visitor:
    """A visitor with a customer card; ``visit=True`` adds one visit (``visitor.visit``).

    ``visit_fields`` go to the Visit: ip, region, source, platform,
    search_keyword, landing_page, trail, device, os, browser, started_at.
    """
    n = next(_seq)
    visitor = Visitor.create(team=_id(team), uid=f"factory-{n}", name=name, phone=phone,
                             note=note, tags=tags or [], email=email)
    visitor.visit = None
    if visit:
        defaults: dict[str, Any] = {
            "ip": "114.114.114.114", "region": "江苏 南京", "source": "direct",
            "platform": "pc_web", "landing_page": "https://shop.example.com/p/1",
            "device": "电脑", "os": "Windows 10", "browser": "Chrome 120"}
        defaults.update(visit_fields)
        visitor.visit = Visit.create(visitor=visitor, team=_id(team), **defaults)
    return visitor


def make_conversation(team: Any, visitor: Any, *, handler: Any = None,
                      messages: Iterable[MessageSpec] = (),
                      started_at: datetime.datetime | None = None,
                      ended_at: datetime.datetime | None = None, status: str | None = None,
                      visit: Any = "default", **fields: Any) -> Conversation:
    """A conversation with its messages; ended (figures stored) when ``ended_at`` is given.

    ``fields`` go to the Conversation: rating, summary, tags, group, ...
    """
    from meiqia.services import figures

    if visit == "default":
        visit = getattr(visitor, "visit", None)
    if status is None:
        status = "ended" if ended_at is not None else ("open" if handler else "bot")
    specs = list(messages)
    if started_at is None:
        if ended_at is not None:
            last = max((s[2] for s in specs if isinstance(s[2], (int, float))), default=0)
            started_at = ended_at - datetime.timedelta(seconds=last + 60)
        else:
            started_at = utcnow()
    conversation = Conversation.create(
        team=_id(team), visitor=_id(visitor), visit=_id(visit), handler=_id(handler),
        status=status, created_at=started_at, ended_at=ended_at, **fields)
    for spec in specs:
        kind, body, when = spec[0], spec[1], spec[2]
        visibility = spec[3] if len(spec) > 3 else "public"
        at = when if isinstance(when, datetime.datetime) else (
            started_at + datetime.timedelta(seconds=when))
        add_message(conversation, kind, body, at, visibility=visibility,
                    agent=handler if kind == "agent" else None)
    if status == "ended":
        figures.compute_and_store(conversation)
        conversation = Conversation.get_by_id(conversation.id)
    return conversation


def add_message(conversation: Any, sender_kind: str, body: str,
                created_at: datetime.datetime | None = None, *, visibility: str = "public",
                kind: str = "text", agent: Any = None) -> Message:
    return Message.create(conversation=_id(conversation), sender_kind=sender_kind, body=body,
                          visibility=visibility, kind=kind, agent=_id(agent),
                          shown_agent=_id(agent), created_at=created_at or utcnow())

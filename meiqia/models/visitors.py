"""Visitors (the customer card) and their visits (where they came from)."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow


class Visitor(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="visitors", on_delete="CASCADE")
    #: Public random id carried (signed) in the visitor token.
    uid = peewee.CharField(max_length=40, unique=True)
    name = peewee.CharField(max_length=120, default="")
    phone = peewee.CharField(max_length=40, default="")
    email = peewee.CharField(max_length=254, default="")
    company = peewee.CharField(max_length=120, default="")
    address = peewee.CharField(max_length=255, default="")
    #: 备注: the agents' note about the customer.
    note = peewee.TextField(default="")
    tags = JSONField(default=list)
    #: Custom attributes set by agents or passed by the embedding page.
    attributes = JSONField(default=dict)
    #: Presence: the visitor has a socket open until this time (refreshed by pings);
    #: NULL once he is known to be offline (his socket closed, or the sweep saw
    #: this time pass and told the agents).
    online_until = peewee.DateTimeField(null=True, index=True)
    #: The language his widget speaks (``zh-CN``, ``en``; empty: the team's), for
    #: the system lines he reads (handover, leave a message).
    language = peewee.CharField(max_length=8, default="")
    created_at = peewee.DateTimeField(default=utcnow)
    last_seen_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "last_seen_at"), False), (("team", "phone"), False))


class Visit(BaseModel):
    visitor = peewee.ForeignKeyField(Visitor, backref="visits", on_delete="CASCADE")
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    ip = peewee.CharField(max_length=45, default="")
    region = peewee.CharField(max_length=120, default="")
    country = peewee.CharField(max_length=80, default="")
    province = peewee.CharField(max_length=80, default="")
    city = peewee.CharField(max_length=80, default="")
    user_agent = peewee.TextField(default="")
    device = peewee.CharField(max_length=80, default="")
    os = peewee.CharField(max_length=80, default="")
    browser = peewee.CharField(max_length=80, default="")
    #: pc_web or mobile_web
    platform = peewee.CharField(max_length=16, default="pc_web")
    landing_page = peewee.TextField(default="")
    referrer = peewee.TextField(default="")
    #: direct, link or search_engine
    source = peewee.CharField(max_length=16, default="direct")
    search_engine = peewee.CharField(max_length=40, default="")
    search_keyword = peewee.CharField(max_length=255, default="")
    #: Pages seen during the visit, newest last: [{"url", "title", "at"}].
    trail = JSONField(default=list)
    custom_info = JSONField(default=dict)
    started_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("visitor", "started_at"), False),)

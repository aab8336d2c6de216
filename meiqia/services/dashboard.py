"""The home dashboard (首页): figures within the viewer's scope, from stored figures.

Nothing here reads messages: every number comes from the figures stored on a
conversation when it ended (``services.figures``) and from the suggestion log.
Each range costs a few aggregate scans of the (team, ended_at) index range and
returns only small results (one row per agent, per hour, two percentile
values), so the work stays in the database: converting tens of thousands of
rows to Python objects was what made the first version slow.
Days and hours are the team's; times are stored in UTC.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import peewee

from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import SuggestionLog
from meiqia.services import dates
from meiqia.services import permissions

C = Conversation
#: The per-agent counts, in the order of the aggregate query.
COUNTS = ("ended", "missed", "invalid", "leads", "bot_resolved", "good", "neutral", "bad")


def _flag(condition: Any) -> Any:
    return peewee.fn.SUM(peewee.Case(None, [(condition, 1)], 0))


def _utc_bounds(start: datetime.date, end: datetime.date,
                tz: ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """The UTC instants the team days ``start``..``end`` cover (the end exclusive),
    with 25- and 23-hour days and a midnight the clock skips (``dates.day_start``)."""
    return dates.day_start(start, tz), dates.day_start(end + datetime.timedelta(days=1), tz)


@lru_cache(maxsize=20000)
def _local_hour(utc_key: str, zone: str) -> tuple[str, int]:
    """'2026-11-19 17:15' (a UTC quarter hour) → ('2026-11-20', 1) in the team's zone.

    Quarter hours, not hours: every zone's offset is a whole number of quarter
    hours (India +5:30, Nepal +5:45, Chatham +12:45), so each quarter falls in one
    local hour; a UTC hour moved whole put a Kolkata team's 00:00-00:30 on the
    day before."""
    local = datetime.datetime.strptime(utc_key, "%Y-%m-%d %H:%M").replace(
        tzinfo=datetime.UTC).astimezone(ZoneInfo(zone))
    return local.date().isoformat(), local.hour


def _where(actor: Agent, lo: datetime.datetime, hi: datetime.datetime) -> tuple[Any, ...]:
    # The team and time range stand alone at the top of the WHERE so the
    # (team, ended_at) index is used; an OR at the top level made it a full scan.
    where: tuple[Any, ...] = (C.team == actor.team_id, C.status == "ended",
                              C.ended_at >= lo, C.ended_at < hi)
    if not permissions.sees_everything(actor):
        # His agents' figures, plus the team's unassigned pool (bot-only conversations).
        where += (permissions.figures_filter(actor)
                  | permissions.unassigned_pool(actor, C),)
    return where


def _p90s(where: tuple[Any, ...], fr_n: int, dur_n: int) -> tuple[float | None, float | None]:
    """The p90 of first response and of duration (linear interpolation between
    the two nearest values, nulls left out).

    PostgreSQL: both from one pass, with the ordered-set aggregate
    ``percentile_cont``, which interpolates the same way. SQLite has none: each
    is the two values at its rank, read from the covering index and sorted there
    (``_percentile``), never the whole column in Python.
    """
    if not is_postgres():
        return (_percentile(where, C.first_response_s, fr_n, 0.9),
                _percentile(where, C.duration_s, dur_n, 0.9))
    if not (fr_n or dur_n):
        return None, None

    def p90(field: Any) -> Any:
        return peewee.NodeList((peewee.fn.percentile_cont(0.9), peewee.SQL("WITHIN GROUP"),
                                peewee.NodeList((peewee.SQL("ORDER BY"), field), parens=True)))

    fr, dur = C.select(p90(C.first_response_s), p90(C.duration_s)).where(*where).tuples()[0]
    return (None if fr is None else round(fr, 1)), (None if dur is None else round(dur, 1))


def _percentile(where: tuple[Any, ...], field: Any, n: int, q: float) -> float | None:
    """The q-quantile (linear interpolation) of ``field`` over ``n`` non-null rows,
    read as two values from the database instead of all of them."""
    if not n:
        return None
    k = (n - 1) * q
    low = int(k)
    values = [v for (v,) in C.select(field).where(*where, field.is_null(False))
              .order_by(field).limit(2).offset(low).tuples()]
    if len(values) == 1 or k == low:
        return float(values[0])
    return round(values[0] + (values[1] - values[0]) * (k - low), 1)


def _avg(total: Any, n: int) -> float | None:
    return round(float(total) / n, 1) if n else None


def figures(actor: Agent, start: datetime.date, end: datetime.date) -> dict[str, Any]:
    """Figures of the conversations that ended from ``start`` to ``end`` (team days)."""
    tz = ZoneInfo(actor.team.timezone)
    lo, hi = _utc_bounds(start, end, tz)
    where = _where(actor, lo, hi)

    per_handler = list(C.select(
        C.handler, peewee.fn.COUNT(C.id), _flag(C.is_missed == True),  # noqa: E712
        _flag(C.is_invalid == True), _flag(C.is_lead == True),  # noqa: E712
        _flag(C.bot_resolved == True),  # noqa: E712
        _flag(C.rating == "good"), _flag(C.rating == "neutral"), _flag(C.rating == "bad"),
        peewee.fn.SUM(C.first_response_s), peewee.fn.COUNT(C.first_response_s),
        peewee.fn.SUM(C.duration_s), peewee.fn.COUNT(C.duration_s),
    ).where(*where).group_by(C.handler).tuples())
    totals = dict.fromkeys(COUNTS, 0)
    fr_sum = fr_n = dur_sum = dur_n = 0
    names = {a.id: a.name for a in Agent.select(Agent.id, Agent.name).where(
        Agent.team == actor.team_id)}
    agents = []
    for handler, *numbers in per_handler:
        counts = dict(zip(COUNTS, (int(v or 0) for v in numbers[:8]), strict=True))
        for key, value in counts.items():
            totals[key] += value
        h_fr_sum, h_fr_n, h_dur_sum, h_dur_n = (v or 0 for v in numbers[8:])
        fr_sum, fr_n = fr_sum + h_fr_sum, fr_n + h_fr_n
        dur_sum, dur_n = dur_sum + h_dur_sum, dur_n + h_dur_n
        if handler is not None:
            agents.append({"agent_id": handler, "agent": names.get(handler, ""),
                           **{k: counts[k] for k in COUNTS if k != "bot_resolved"},
                           "avg_first_response_s": _avg(h_fr_sum, h_fr_n),
                           "avg_duration_s": _avg(h_dur_sum, h_dur_n)})
    agents.sort(key=lambda a: (-a["ended"], a["agent"]))

    # Ended per UTC quarter hour, moved into the team's zone here (a few rows a day).
    if is_postgres():
        hour_key = peewee.fn.to_char(C.ended_at, "YYYY-MM-DD HH24:").concat(
            peewee.fn.lpad(peewee.Cast(peewee.fn.floor(
                peewee.fn.date_part("minute", C.ended_at) / 15) * 15, "text"), 2, "0"),
        ).coerce(False)
    else:
        hour_key = peewee.fn.substr(C.ended_at, 1, 14).concat(peewee.fn.printf(
            "%02d", peewee.Cast(peewee.fn.substr(C.ended_at, 15, 2), "integer") / 15 * 15)
        ).coerce(False)
    by_day: dict[str, int] = {}
    by_hour = [0] * 24
    for key, count in C.select(hour_key, peewee.fn.COUNT(C.id)).where(*where).group_by(
            hour_key).tuples():
        day, hour = _local_hour(key, actor.team.timezone)
        by_day[day] = by_day.get(day, 0) + count
        by_hour[hour] += count
    days = []
    day = start
    while day <= end:
        days.append({"day": day.isoformat(), "ended": by_day.get(day.isoformat(), 0)})
        day += datetime.timedelta(days=1)

    ended = totals["ended"]
    fr_p90, dur_p90 = _p90s(where, fr_n, dur_n)
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "ended": ended, "missed": totals["missed"], "invalid": totals["invalid"],
        "leads": totals["leads"],
        "bot_resolved_share": round(totals["bot_resolved"] / ended, 4) if ended else None,
        "suggestions": suggestions(actor, lo, hi),
        "first_response_s": {"avg": _avg(fr_sum, fr_n), "p90": fr_p90},
        "duration_s": {"avg": _avg(dur_sum, dur_n), "p90": dur_p90},
        "ratings": {"good": totals["good"], "neutral": totals["neutral"],
                    "bad": totals["bad"],
                    "none": ended - totals["good"] - totals["neutral"] - totals["bad"]},
        "per_agent": agents,
        "by_day": days,
        "by_hour": [{"hour": h, "ended": n} for h, n in enumerate(by_hour)],
        "by_channel": by_channel(where),
    }


def by_channel(where: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Ended conversations per channel (web, e-mail, WeChat…), most first: one
    small grouped aggregate (a row per channel)."""
    rows = C.select(C.channel, peewee.fn.COUNT(C.id), _flag(C.is_missed == True),  # noqa: E712
                    _flag(C.bot_resolved == True), _flag(C.is_lead == True),  # noqa: E712
                    ).where(*where).group_by(C.channel).tuples()
    from meiqia.channels.registry import names

    found = [{"channel": channel, "names": names(channel), "ended": int(n or 0),
              "missed": int(missed or 0),
              "bot_resolved": int(bot or 0), "leads": int(leads or 0)}
             for channel, n, missed, bot, leads in rows]
    return sorted(found, key=lambda r: (-r["ended"], r["channel"]))


def suggestions(actor: Agent, lo: datetime.datetime, hi: datetime.datetime) -> dict[str, Any]:
    """Bot suggestions shown to agents in scope, and how many they sent (as is or edited)."""
    query = SuggestionLog.select(SuggestionLog.outcome, peewee.fn.COUNT(SuggestionLog.id)).where(
        SuggestionLog.team == actor.team_id, SuggestionLog.created_at >= lo,
        SuggestionLog.created_at < hi)
    agents = permissions.visible_agent_ids(actor)
    if agents is not None:
        query = query.where(SuggestionLog.agent.in_(agents))
    outcomes = dict(query.group_by(SuggestionLog.outcome).tuples())
    shown = sum(outcomes.values())
    used = outcomes.get("accepted", 0) + outcomes.get("edited", 0)
    return {"shown": shown, "accepted": outcomes.get("accepted", 0),
            "edited": outcomes.get("edited", 0),
            "acceptance": round(used / shown, 4) if shown else None}


def now(actor: Agent) -> dict[str, int]:
    """Conversations going on now, in scope: active (with the bot or an agent), queued.

    Counted as the figures are (``_where``): a scoped agent's agents' conversations
    plus the unassigned pool of his groups, chats with the bot included. Numbers,
    not transcripts: he may not open a chat with the bot in no group
    (``permissions.conversation_filter``), but his dashboard counts it."""
    where: tuple[Any, ...] = (C.team == actor.team_id, C.status.in_(["bot", "open", "queued"]))
    if not permissions.sees_everything(actor):
        where += (permissions.figures_filter(actor)
                  | permissions.unassigned_pool(actor, C),)
    counts = dict(C.select(C.status, peewee.fn.COUNT(C.id)).where(*where)
                  .group_by(C.status).tuples())
    return {"active": counts.get("bot", 0) + counts.get("open", 0),
            "queued": counts.get("queued", 0)}


def home(actor: Agent, start: datetime.date, end: datetime.date) -> dict[str, Any]:
    """The home page: now, today and the chosen range of team days."""
    today = datetime.datetime.now(ZoneInfo(actor.team.timezone)).date()
    return {"now": now(actor), "today": figures(actor, today, today),
            "range": figures(actor, start, end)}

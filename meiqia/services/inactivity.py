"""The inactivity rule (DESIGN §4: "Only agents end conversations (or the
inactivity rule)"): the system ends conversations that went quiet.

A team's ``ConversationRule.inactivity_minutes`` (0: never) is how long a
conversation may go without any message, assignment or queueing before it is
ended with the reason ``inactivity``; ``bot_inactivity_minutes`` (default 30,
also for teams that never stored rules; 0: follow ``inactivity_minutes``) does
the same for chats only the bot has served (status ``bot``; the shorter of the
two rules applies to them), so abandoned bot
chats leave the dashboard's "ongoing" and the active lists. Ended either way, like any other end: figures stored, the
place freed (the queue head is assigned), the visitor told by an ``ended``
event message and the ``conversation`` state.

Which conversations:

- ``open``: the rule's purpose (an agent forgot it, the visitor left).
- ``bot``: nobody else ever ends them; a visitor who stopped talking to the
  bot leaves the active lists.
- ``queued``: only when the visitor has gone as well (no socket sign of life,
  ``Visitor.online_until`` passed). A visitor still on the page is waiting for
  *us*: silence in the queue is not his inactivity. Never a channel's (e-mail,
  WeChat): its customer has no socket, and his chat, queued when nobody was
  online, waits for the first agent back.

Where it runs: every web process has one sweeper thread (a greenlet under
gevent), started by its first request, that sweeps every
``INACTIVITY_SWEEP_SECONDS`` (0: off). So the embedded default needs no extra
server, and production needs nothing more than its web processes. Several
processes may sweep at once: each end is one conditional UPDATE that re-checks
the idleness, so exactly one process ends a conversation, and a message that
arrived since the look-up keeps it open.
"""

from __future__ import annotations

import datetime
import logging

import peewee
from flask import Flask

from meiqia.db import is_database_error
from meiqia.models import Conversation
from meiqia.models import ConversationRule
from meiqia.models import Team
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services.errors import Conflict
from meiqia.services.sweeper import Sweeper
from meiqia.services.sweeper import install

log = logging.getLogger(__name__)

REASON = "inactivity"
#: Conversations ended per team per sweep at most (the next sweep goes on).
BATCH = 200


def _quiet(cutoff: datetime.datetime) -> peewee.Expression:
    return (
        (Conversation.last_message_at.is_null() | (Conversation.last_message_at < cutoff))
        & (Conversation.assigned_at.is_null() | (Conversation.assigned_at < cutoff))
        & (Conversation.queued_at.is_null() | (Conversation.queued_at < cutoff))
        & (Conversation.created_at < cutoff)
    )


def idle_condition(cutoff: datetime.datetime, now: datetime.datetime,
                   with_bot: bool = True) -> peewee.Expression:
    """Conversations quiet since before ``cutoff`` that the rule may end (see the
    module docstring). Used for the look-up and again in the ending UPDATE.
    ``with_bot`` False leaves bot-only chats to their own rule (``bot_condition``)."""
    gone = Conversation.visitor.in_(Visitor.select(Visitor.id).where(
        Visitor.online_until.is_null() | (Visitor.online_until < now)))
    # A channel's customer (e-mail, WeChat) has no socket to be "gone" from: his
    # queued chat waits for the first agent back (routing.waits_on_its_channel).
    waiting_web = (Conversation.status == "queued") & gone & (Conversation.channel == "web")
    return _quiet(cutoff) & (Conversation.status.in_(("open", "bot") if with_bot else ("open",))
                             | waiting_web)


def bot_condition(cutoff: datetime.datetime) -> peewee.Expression:
    """Bot-only chats (status ``bot``) quiet since before ``cutoff``."""
    return _quiet(cutoff) & (Conversation.status == "bot")


def plans(now: datetime.datetime) -> list[tuple[int, int, peewee.Expression]]:
    """(team, minutes, condition) for every rule to apply now. A team without
    stored rules has the defaults: bot-only chats end after
    ``bot_inactivity_minutes`` (30), others never."""
    default_bot = ConversationRule.bot_inactivity_minutes.default
    rows = (Team.select(Team.id, ConversationRule.inactivity_minutes,
                        ConversationRule.bot_inactivity_minutes)
            .join(ConversationRule, peewee.JOIN.LEFT_OUTER,
                  on=(ConversationRule.team == Team.id)).tuples())
    out = []
    for team_id, minutes, bot_minutes in rows:
        minutes = minutes or 0
        bot_minutes = default_bot if bot_minutes is None else bot_minutes
        # Bot-only chats end after the shorter of the two rules that are on.
        bot_own = bot_minutes > 0 and (minutes == 0 or bot_minutes < minutes)
        if minutes > 0:
            cutoff = now - datetime.timedelta(minutes=minutes)
            out.append((team_id, minutes, idle_condition(cutoff, now, with_bot=not bot_own)))
        if bot_own:
            cutoff = now - datetime.timedelta(minutes=bot_minutes)
            out.append((team_id, bot_minutes, bot_condition(cutoff)))
    return out


def sweep(now: datetime.datetime | None = None) -> int:
    """End every conversation the teams' inactivity rules say is over; return how many.

    Safe to run in several processes at once (see the module docstring).
    """
    from meiqia.services import conversations

    now = now or utcnow()
    ended = 0
    for team_id, minutes, condition in plans(now):
        ids = [cid for (cid,) in Conversation.select(Conversation.id).where(
            Conversation.team == team_id, condition).order_by(Conversation.id)
            .limit(BATCH).tuples()]
        for conversation_id in ids:
            try:
                conversations.system_end(conversation_id, REASON, only_if=condition,
                                         note={"minutes": minutes})
                ended += 1
            except Conflict:
                pass  # another process ended it, or someone wrote meanwhile
            except Exception as exc:  # noqa: BLE001 - one conversation must not stop the sweep
                if is_database_error(exc):
                    raise  # the database is down: the sweeper warns once (db.Outage)
                log.exception("inactivity: could not end conversation %s", conversation_id)
    return ended



def init_app(app: Flask) -> Sweeper | None:
    """This process sweeps every ``INACTIVITY_SWEEP_SECONDS`` seconds (``services/sweeper.py``)."""
    return install(app, "INACTIVITY_SWEEP_SECONDS", "meiqia.inactivity", sweep, "inactivity")

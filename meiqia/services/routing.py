"""Routing (DESIGN §4): who takes a conversation, and the queue.

An online and connected agent (``capacity.seats``: a live workspace
socket, see ``services/presence.py``) below his limit gets it (least-loaded first, ties round-robin,
then the ``assign_agent`` hook decides); nobody free but someone online: the
conversation queues, first come first served, with positions pushed live;
nobody online: the visitor is offered the leave-a-message form, and so are
the visitors still queued when the last agent goes (``tell_if_nobody_left``).
A person taking a conversation (routing or a transfer) is announced to the
visitor with a stored ``handover`` line in his language.

Assignment is atomic: each team's assignments are serialised (an IMMEDIATE
transaction on SQLite, a transaction-scoped advisory lock on PostgreSQL), and
the conversation is updated only if it still has no handler, so under any
concurrency no agent exceeds his limit and no conversation gets two handlers.
A pass assigns the whole queue in batches, and calls that arrive while one
runs in the process wait for it instead of making their own (``_Router``).
No plugin runs while that lock is held: ``assign_agent`` is asked first, outside
the transaction, and its choice is checked inside (``_plugin_choice``).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
from collections.abc import Iterator
from typing import Any

import peewee
from flask import current_app

from meiqia.db import database
from meiqia.db import find_by_id
from meiqia.db import get_by_id
from meiqia.db import is_postgres
from meiqia.db import statement
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models.base import utcnow
from meiqia.services import capacity
from meiqia.services import events
from meiqia.services.messages import agent_topic
from meiqia.services.messages import conversation_topic
from meiqia.services.messages import post_message
from meiqia.services.messages import team_topic
from meiqia.services.teams import recent
from meiqia.services.teams import recent_settings


@contextlib.contextmanager
def team_transaction(team_id: int) -> Iterator[None]:
    """A transaction that holds the team's routing lock until it ends."""
    if is_postgres():
        with database.atomic():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", (7301, team_id))
            yield
    else:
        with database.atomic("IMMEDIATE"):
            yield


def _same_queue(team_id: int, group_id: int | None) -> Any:
    """Queued conversations of one queue: the team's general one (no group) or a
    group's. Each is served first come first served by its own agents, so a
    visitor's place counts only those ahead of him in his queue."""
    group = Conversation.group.is_null() if group_id is None else Conversation.group == group_id
    return (Conversation.team == team_id) & (Conversation.status == "queued") & group


def queue_position(conversation: Conversation) -> int | None:
    """1 for the head of the conversation's queue (see ``_same_queue``), None when
    it is not queued. Its SQL is built once (``db.statement``): every queued
    visitor's state asks it, and peewee building a COUNT each time cost more CPU
    than the count (``benchmarks/message_path.py --routing``)."""
    if conversation.status != "queued" or conversation.queued_at is None:
        return None
    general = conversation.group_id is None

    def build() -> str:
        return Conversation.select(peewee.fn.COUNT(Conversation.id)).where(
            _same_queue(0, None if general else 0),
            (Conversation.queued_at < datetime.datetime(2000, 1, 1))
            | ((Conversation.queued_at == datetime.datetime(2000, 1, 1))
               & (Conversation.id < 0)),
        ).sql()[0]

    sql = statement(("routing.queue_position", general), build)
    queued_at = Conversation.queued_at.db_value(conversation.queued_at)
    params = [conversation.team_id, "queued"] + ([] if general else [conversation.group_id])
    params += [queued_at, queued_at, conversation.id]
    ahead = database.execute_sql(sql, params).fetchone()[0]
    return ahead + 1


def publish_queue(team_id: int, group_ids: Any,
                  told: dict[int, int | None] | None = None) -> None:
    """Push the position of every conversation still waiting in these queues.

    Called whenever a conversation leaves a queue (assigned, taken or
    transferred by hand, ended, left for a ticket), so every visitor behind it
    sees his new place. One query per queue: positions are counted in order,
    not asked of ``queue_position`` one by one. ``told``: conversation id to the
    position the caller just published for it (``publish_state``); a conversation
    still at that position gets no second, identical frame.
    """
    told = told or {}
    for group_id in set(group_ids):
        general = group_id is None
        sql = statement(("routing.queue", general), lambda general=general: (
            Conversation.select(Conversation.id)
            .where(_same_queue(0, None if general else 0))
            .order_by(Conversation.queued_at, Conversation.id).sql()[0]))
        params = [team_id, "queued"] + ([] if general else [group_id])
        waiting = database.execute_sql(sql, params).fetchall()
        for position, (conversation_id,) in enumerate(waiting, 1):
            if conversation_id in told and told[conversation_id] == position:
                continue
            events.emit("conversation", team_id,
                        [conversation_topic(conversation_id), team_topic(team_id)],
                        {"conversation_id": conversation_id, "status": "queued",
                         "queue_position": position, "handler": None, "group_id": group_id},
                        track=False)


def _offer_once(conversation: Conversation, situation: str) -> None:
    """``offer_ticket`` for a visitor who asked for a person nobody can be: the stored
    ``leave_message`` line at most once per OFFER_AGAIN_SECONDS (``offered_at`` claims
    it, across processes), the ``offer_ticket`` frame every time.

    With the bot off, every message of a visitor nobody can serve asks for a person.
    A line per message repeated the same sentence under each of his messages, and
    under load it doubled the stored messages and their fan-out to every agent
    (issue 19's embedded run: 9,730 lines for 21,090 visitor messages)."""
    if _claim_telling(conversation):
        offer_ticket(conversation, situation)
    else:
        _offer_frame(conversation, situation)


def _claim_telling(conversation: Conversation) -> bool:
    """Whether this caller tells the visitor now: ``offered_at`` claimed by one
    conditional UPDATE, across processes, at most once per OFFER_AGAIN_SECONDS."""
    now = utcnow()
    return bool(Conversation.update(offered_at=now).where(
        Conversation.id == conversation.id,
        Conversation.offered_at.is_null()
        | (Conversation.offered_at < now - datetime.timedelta(seconds=OFFER_AGAIN_SECONDS)),
    ).execute())


def waits_on_its_channel(conversation: Conversation) -> bool:
    """Whether a conversation nobody can take now waits in the queue instead of
    being offered the leave-a-message form: one of a channel (e-mail, WeChat…),
    whose customer can be answered later where he wrote, and has no form."""
    return (getattr(conversation, "channel", "web") or "web") != "web"


def _tell_once(conversation: Conversation) -> None:
    """The ``waiting_for_agent`` line, at most once per OFFER_AGAIN_SECONDS
    (``_claim_telling``)."""
    if _claim_telling(conversation):
        _tell_waiting(conversation)


def _tell_waiting(conversation: Conversation) -> None:
    """A channel's customer is told his chat waits for an agent (public event line,
    in his language; the team's own "nobody online" message when it has one)."""
    post_message(conversation, "system", nobody_text(conversation, CHANNEL_WAIT_TEXT),
                 kind="event", payload={"event": "waiting_for_agent"})


def _offer_frame(conversation: Conversation, situation: str) -> None:
    """The visitor's ``conversation`` frame with ``offer_ticket``: show the form."""
    events.emit("conversation", conversation.team_id, [conversation_topic(conversation.id)],
                {"conversation_id": conversation.id, "status": conversation.status,
                 "offer_ticket": situation}, track=False)


def _state_event(conversation: Conversation) -> dict[str, Any]:
    handler = find_by_id(Agent, conversation.handler_id)
    return {
        "conversation_id": conversation.id,
        "status": conversation.status,
        "queue_position": queue_position(conversation),
        "handler": {"id": handler.id, "name": handler.display_name} if handler else None,
        "group_id": conversation.group_id,
    }


def publish_state(conversation: Conversation,
                  previous_handler_id: int | None = None) -> dict[str, Any]:
    """Tell the visitor and the team what state the conversation is in now;
    returns the event's data.

    ``previous_handler_id`` (a transfer): the agent it was taken from, so that
    the sockets that saw it through him hear that it moved, even where the new
    handler or group is outside their scope (their workspace closes it)."""
    data = _state_event(conversation)
    if previous_handler_id is not None:
        data["previous_handler_id"] = previous_handler_id
    events.emit("conversation", conversation.team_id,
                [conversation_topic(conversation.id), team_topic(conversation.team_id)], data,
                track=False)
    return data


def request_human(conversation: Conversation) -> str:
    """Route a conversation to a person. Returns ``open``, ``queued`` or
    ``nobody`` (nobody can take it: the widget offers the leave-a-message form)."""
    conversation = get_by_id(Conversation, conversation.id)
    if conversation.status == "queued" and waits_on_its_channel(conversation) and \
            capacity.availability(conversation.team_id) == capacity.NOBODY_ONLINE:
        # He asks again while his chat waits for the first agent back: say so again
        # (at most once per OFFER_AGAIN_SECONDS), rather than nothing at all.
        _tell_once(conversation)
    if conversation.status in {"open", "queued"}:
        return conversation.status
    if conversation.status == "ended":
        return "nobody"
    team_id = conversation.team_id
    situation = capacity.availability(team_id)
    queue_ok = recent_settings(team_id)["queue_enabled"]
    if situation == capacity.NOBODY_ONLINE or (
        situation == capacity.ALL_BUSY and not queue_ok
    ):
        if situation == capacity.NOBODY_ONLINE:
            capacity.note_if_shown_online(team_id)
        if not waits_on_its_channel(conversation):
            _offer_once(conversation, situation)
            return "nobody"
        # A customer of e-mail or WeChat has no leave-a-message form and is still
        # there tomorrow: his chat waits in the queue for the first agent back.
        _tell_once(conversation)
    Conversation.update(status="queued", queued_at=utcnow()).where(
        Conversation.id == conversation.id, Conversation.status == "bot").execute()
    assign_waiting(team_id)
    conversation = get_by_id(Conversation, conversation.id)
    if conversation.status == "queued":
        publish_state(conversation)
    return conversation.status


#: Queued conversations one routing pass assigns at most (then it goes again).
BATCH = 50


def _plugin_choice(team_id: int) -> tuple[int, int] | None:
    """Ask ``assign_agent`` plugins, outside any transaction: (conversation id,
    agent id) for the conversation that is next in line, or None.

    A plugin may hang or be slow (its budget bounds the wait); holding the
    team's write lock meanwhile stalled every message of every conversation.
    So the plugin only proposes, here, and ``_assign_batch`` takes the proposal
    inside the transaction if it still holds (the same conversation is next
    and the agent is still free), else the default: least-loaded first.
    Without a plugin of its own (only the built-in policy, which picks the
    first), nothing is asked.
    """
    pm = current_app.extensions["meiqia.plugins"]
    if not pm.has_custom("assign_agent"):
        return None
    waiting = _waiting(team_id, 1)
    if not waiting:
        return None
    free, _loads = capacity.candidates_and_loads(team_id)
    pool = _pool_for(waiting[0], free, _group_members(waiting))
    if not pool:
        return None
    rows = {a.id: a for a in Agent.select().where(Agent.id.in_([seat.id for seat in pool]))}
    pool = [rows[seat.id] for seat in pool if seat.id in rows]  # a plugin gets whole agents
    try:  # a plugin gets the whole conversation
        conversation = get_by_id(Conversation, waiting[0].id)
    except Conversation.DoesNotExist:
        return None
    ids = {agent.id for agent in pool}
    chosen = pm.call_first("assign_agent", conversation=conversation, candidates=pool,
                           check=lambda answer: not_a_candidate(answer, ids))
    chosen_id = getattr(chosen, "id", None)
    return (waiting[0].id, chosen_id) if chosen_id is not None else None


def not_a_candidate(answer: Any, ids: set[int]) -> str | None:
    """The runtime's ``check`` of an ``assign_agent`` answer: None, or one of the
    candidates (an agent whose ``id`` is one of theirs). Anything else (a name, an
    agent who is offline, full or of another team) is a failure of the plugin:
    counted, logged and held against the breaker; the next implementation, in the
    end the default routing, decides instead (docs/plugins.md, "Routing")."""
    if answer is None:
        return None
    agent_id = getattr(answer, "id", None)
    if not isinstance(agent_id, int) or isinstance(agent_id, bool):
        return f"expected one of the candidates, got {type(answer).__name__}"
    if agent_id not in ids:
        return "the agent returned is not one of the candidates (offline, full or elsewhere)"
    return None


class Waiting:
    """What routing reads of a queued conversation: its id and its queue."""

    __slots__ = ("id", "group_id")

    def __init__(self, id: int, group_id: int | None) -> None:
        self.id = id
        self.group_id = group_id


def _waiting(team_id: int, limit: int, skip: int = 0) -> list[Waiting]:
    """The team's queued conversations without a handler, oldest first (after
    the first ``skip``): ids and groups only, in a statement built once. Whole
    rows (forty columns each, fifty a pass) were most of a pass's CPU while the
    queue was long (``benchmarks/message_path.py --routing``)."""
    sql = statement("routing.waiting", lambda: Conversation.select(
        Conversation.id, Conversation.group).where(
        Conversation.team == 0, Conversation.status == "queued",
        Conversation.handler.is_null()).order_by(
        Conversation.queued_at, Conversation.id).limit(1).offset(0).sql()[0])
    rows = database.execute_sql(sql, [team_id, "queued", limit, skip]).fetchall()
    return [Waiting(cid, group_id) for cid, group_id in rows]


def _group_members(waiting: list[Waiting]) -> dict[int, set[int]]:
    """The members of each group the waiting conversations are queued for."""
    from meiqia.models import AgentGroup

    groups = {c.group_id for c in waiting if c.group_id}
    members: dict[int, set[int]] = {g: set() for g in groups}
    if groups:
        for agent_id, group_id in AgentGroup.select(AgentGroup.agent, AgentGroup.group).where(
                AgentGroup.group.in_(sorted(groups))).tuples():
            members[group_id].add(agent_id)
    return members


def _pool_for(conversation: Waiting, free: list[capacity.Seat],
              members: dict[int, set[int]]) -> list[capacity.Seat]:
    """The free agents who may take it: its group's members, or anyone for the
    general queue; in the order ``free`` is in (least-loaded first)."""
    if not conversation.group_id:
        return free
    return [a for a in free if a.id in members[conversation.group_id]]


def _assign_batch(team_id: int, skip: int = 0) -> tuple[list[Conversation], int]:
    """Give the longest-waiting assignable conversations handlers, atomically:
    up to BATCH in one transaction under the team's lock.

    The candidates and their loads are read once and kept up to date here as
    each conversation is given, so a burst of first messages (a campaign: a
    thousand visitors asking for a person in the same seconds) is routed in a
    few passes, each a handful of statements, instead of one locked pass of a
    dozen statements per conversation, which is what held every socket's
    database turn in line behind the team's lock. The same rules as one by
    one: least-loaded first, ties round-robin (``capacity.candidates``), the
    group's members for a group's queue, nobody past his limit, and each
    conversation updated only if it still has no handler. No plugin is called
    in here (see ``_plugin_choice``).

    Returns the conversations given and how many of the page looked at stay
    waiting (None when no later page can be served: the page was the last, or
    nobody is free any more), for the next page to skip."""
    proposal = _plugin_choice(team_id) if not skip else None
    with team_transaction(team_id):
        # Who is free first: with every agent full (a long queue), a pass is this
        # one statement, not also a page of the queue.
        free, loads = capacity.candidates_and_loads(team_id)
        if not free:
            return [], None
        waiting = _waiting(team_id, BATCH, skip)
        if not waiting:
            return [], None
        members = _group_members(waiting)
        now = utcnow()
        plan: list[tuple[int, int]] = []  # (conversation id, agent id), in queue order
        for conversation in waiting:
            pool = _pool_for(conversation, free, members)
            if not pool:
                continue
            chosen = pool[0]
            if proposal is not None and proposal[0] == conversation.id:
                chosen = next((a for a in pool if a.id == proposal[1]), chosen)
            plan.append((conversation.id, chosen.id))
            loads[chosen.id] = loads.get(chosen.id, 0) + 1
            chosen.last_assigned_at = now
            free = capacity.order_candidates(
                [a for a in free if loads.get(a.id, 0) < a.max_concurrent], loads)
            if not free:
                break
        given = _give(plan, now)
        chosen_ids = sorted({agent_id for cid, agent_id in plan if cid in given})
        if chosen_ids:
            Agent.update(last_assigned_at=now).where(Agent.id.in_(chosen_ids)).execute()
        if len(given) == 1:  # the usual pass: one visitor asked, one is given
            rows = {cid: get_by_id(Conversation, cid) for cid in given}
        else:
            rows = {c.id: c for c in Conversation.select().where(
                Conversation.id.in_(sorted(given)))}
        stay = len(waiting) - len(given)
        more = len(waiting) == BATCH and bool(free)
        return [rows[cid] for cid, _ in plan if cid in rows], (stay if more else None)


def _give(plan: list[tuple[int, int]], now: Any) -> set[int]:
    """Set each planned conversation's handler in one statement (a round trip per
    conversation is a wait per conversation with the team's lock held), only
    where it is still queued with no handler; the ids that were given."""
    if not plan:
        return set()
    table = Conversation._meta.table_name
    mark = database.param
    values = ", ".join(f"({mark}, {mark})" for _ in plan)
    cursor = database.execute_sql(
        f'UPDATE "{table}" SET "handler_id" = v.column2, "status" = {mark}, '
        f'"assigned_at" = {mark} FROM (VALUES {values}) AS v '
        f'WHERE "{table}"."id" = v.column1 AND "{table}"."handler_id" IS NULL '
        f'AND "{table}"."status" = {mark} RETURNING "{table}"."id"',
        ["open", now, *[x for pair in plan for x in pair], "queued"])
    return {row[0] for row in cursor.fetchall()}


class _Router:
    """One team's routing passes in this process, coalesced.

    Every message that asks for a person, every freed place, calls
    ``assign_waiting``. Passes run one at a time per team anyway (the team's
    lock), and a pass assigns everything assignable, so a caller whose request
    was registered before a pass started needs no pass of its own: it waits for
    that pass to end and returns. ``requested``/``done`` count requests: a pass
    that starts when ``requested`` is n serves every request up to n (their
    conversations were committed before they registered).
    """

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.count_lock = threading.Lock()
        self.requested = 0
        self.done = 0


def _router(team_id: int) -> _Router:
    routers = current_app.extensions.setdefault("meiqia.routers", {})
    router = routers.get(team_id)
    if router is None:
        router = routers.setdefault(team_id, _Router())
    return router


def assign_waiting(team_id: int) -> list[Conversation]:
    """Assign queued conversations while someone is free; push new queue positions.

    Returns the conversations this call assigned (a call served by another
    caller's pass returns none: that caller announces them). The
    announcements (the visitor's handover line, the new states) are made after
    the pass, outside its lock: the next pass need not wait for them."""
    if database.in_transaction():
        # The caller's own changes are not committed: nobody else's pass sees them.
        assigned = _assign_all(team_id)
    else:
        router = _router(team_id)
        with router.count_lock:
            router.requested += 1
            mine = router.requested
        with router.lock:
            if router.done >= mine:
                return []
            with router.count_lock:
                start = router.requested
            assigned = _assign_all(team_id)
            router.done = max(router.done, start)
    for conversation in assigned:
        announce_handover(conversation)
        publish_state(conversation)
        events.emit("assigned", team_id, [agent_topic(conversation.handler_id)],
                    {"conversation_id": conversation.id})
    publish_queue(team_id, {c.group_id for c in assigned})
    return assigned


def _assign_all(team_id: int) -> list[Conversation]:
    """Passes until the queue is empty or nobody is free."""
    assigned: list[Conversation] = []
    skip = 0
    while True:
        # A page whose conversations nobody free may take (a group's queue whose
        # members are full) does not hide the pages behind it.
        batch, stay = _assign_batch(team_id, skip)
        assigned += batch
        if stay is None:
            return assigned
        skip += stay


#: The visitor's line when a person takes his chat (routing or transfer).
HANDOVER_TEXT = {"zh-CN": "{name} 为您服务", "en": "{name} is now serving you"}
#: The visitor's line when nobody can take his chat (leave a message instead).
LEAVE_MESSAGE_TEXT = {
    "zh-CN": "现在没有客服可以接待，请留言，我们会尽快联系您。",
    "en": "No agent can take your chat right now: leave a message and we'll get back to you.",
}
#: A channel customer's line when nobody can take his chat now: it waits for an agent.
CHANNEL_WAIT_TEXT = {
    "zh-CN": "现在没有客服可以接待，您的消息已收到。客服有空后会尽快在这里回复您。",
    "en": "No agent can take your chat right now; your message is kept and an agent will "
          "answer you here as soon as one is free.",
}
#: A queued visitor is told "nobody is left" at most once in this many seconds.
OFFER_AGAIN_SECONDS = 30


def nobody_text(conversation: Conversation, built_in: dict[str, str]) -> str:
    """The line a visitor gets when nobody can take his chat: the team's own
    "nobody online" message (``settings.offline_message``, Admin → 团队设置) when it
    has one, as written, whatever the visitor's language (the team chose it);
    else ``built_in`` (``LEAVE_MESSAGE_TEXT`` or, on a channel, ``CHANNEL_WAIT_TEXT``)
    in the visitor's language."""
    own = (recent_settings(conversation.team_id).get("offline_message") or "").strip()
    return own or built_in[visitor_language(conversation)]


def visitor_language(conversation: Conversation) -> str:
    """The visitor's language (what his widget said), else the team's."""
    from meiqia.models import Visitor

    visitor = find_by_id(Visitor, conversation.visitor_id)
    lang = visitor.language if visitor is not None else ""
    if lang not in HANDOVER_TEXT:
        team = recent(conversation.team_id)
        lang = "en" if team is not None and team.language == "en" else "zh-CN"
    return lang


def _latest_public(conversation: Conversation, limit: int = 5,
                   system_events: bool = False) -> list[Any]:
    """The conversation's last ``limit`` messages the visitor sees (only the system's
    event lines with ``system_events``), newest first."""
    from meiqia.models import Message

    where = [Message.conversation == conversation.id, Message.visibility == "public"]
    if system_events:
        where += [Message.sender_kind == "system", Message.kind == "event"]
    return list(Message.select(Message.sender_kind, Message.kind, Message.payload)
                .where(*where).order_by(Message.id.desc()).limit(limit))


def _system_event(message: Any) -> str | None:
    return (message.payload or {}).get("event") \
        if message.sender_kind == "system" and message.kind == "event" else None


def announce_handover(conversation: Conversation) -> None:
    """Tell the visitor who serves him now: a stored public ``handover`` event line,
    with the name visitors see (nickname, else name), so a resuming client gets it.

    Not when the last such line he has already says so: his agent's tab closed and
    the chat came back to him, and nothing was said between (an e-mail customer got
    "小王 为您服务" again by mail each time)."""
    handler = find_by_id(Agent, conversation.handler_id)
    if handler is None:
        return
    name = handler.display_name
    last = _latest_public(conversation, 1, system_events=True)
    if last and _system_event(last[0]) == "handover" \
            and (last[0].payload or {}).get("agent") == name:
        return
    post_message(conversation, "system",
                 HANDOVER_TEXT[visitor_language(conversation)].format(name=name),
                 kind="event", payload={"event": "handover", "agent": name})


def offer_ticket(conversation: Conversation, situation: str) -> None:
    """Nobody can take the chat: the ``offer_ticket`` state to the visitor and the
    stored ``leave_message`` line (so a client that resumes later sees it too)."""
    _offer_frame(conversation, situation)
    post_message(conversation, "system", nobody_text(conversation, LEAVE_MESSAGE_TEXT),
                 kind="event", payload={"event": "leave_message", "reason": situation})


def tell_if_nobody_left(team_id: int) -> int:
    """Offer every queued visitor whom nobody is left to serve to leave a message
    instead of waiting for nobody: all of the team's queue when no agent is
    online and connected any more, and a group's queue (a chat transferred to a
    group) when none of its members is. They stay queued (an agent who comes
    back serves them). A channel's customer (e-mail, WeChat) has no form: he gets
    the ``waiting_for_agent`` line instead. Returns how many were told.

    Called on every departure (an agent away, offline, invisible, deactivated),
    possibly by several processes at once: a conditional UPDATE of
    ``offered_at`` claims each visitor, so he is told once.
    """
    waiting = list(Conversation.select().where(
        Conversation.team == team_id, Conversation.status == "queued")
        .order_by(Conversation.queued_at, Conversation.id))
    now = utcnow()
    cutoff = now - datetime.timedelta(seconds=OFFER_AGAIN_SECONDS)
    return _tell_unserved(team_id, waiting, now,
                          Conversation.offered_at.is_null() | (Conversation.offered_at < cutoff))


#: How far back (seconds) each presence sweep looks for chats moved to a group's queue
#: (``tell_transferred_to_nobody``): far more than a sweep's interval, so a sweep that
#: runs late still sees them, and few enough rows to read every second.
TRANSFERRED_LOOKBACK_SECONDS = 15


def tell_transferred_to_nobody(now: datetime.datetime | None = None) -> int:
    """The presence sweep's look at chats that came into a group's queue lately (a
    transfer to a group) and were not told since: those of a group none of whose
    members is online and connected get the "nobody left" offer (``tell_if_nobody_left``
    tells a group's queue only when its last member goes, and a chat transferred to a
    group that had nobody already saw nobody go). Each such chat is told once for
    its time in that queue (``offered_at`` before ``queued_at``), by one process.
    Returns how many were told."""
    now = now or utcnow()
    since = now - datetime.timedelta(seconds=TRANSFERRED_LOOKBACK_SECONDS)
    untold = Conversation.offered_at.is_null() | (Conversation.offered_at < Conversation.queued_at)
    # One statement for every team each second (not one per team): queued rows of the
    # last seconds, usually none.
    fresh = list(Conversation.select().where(
        Conversation.status == "queued", Conversation.queued_at > since,
        Conversation.group.is_null(False), untold)
        .order_by(Conversation.team, Conversation.queued_at, Conversation.id))
    told = 0
    for team_id, rows in itertools.groupby(fresh, key=lambda c: c.team_id):
        told += _tell_unserved(team_id, list(rows), now, untold, groups_only=True)
    return told


def _tell_unserved(team_id: int, waiting: list[Conversation], now: datetime.datetime,
                   untold: Any, groups_only: bool = False) -> int:
    """Tell those of ``waiting`` (queued, oldest first) whom nobody present can serve
    (see ``tell_if_nobody_left``), each claimed by a conditional UPDATE of
    ``offered_at`` where ``untold`` still holds. ``groups_only``: the general
    queue's chats are left alone even when nobody at all is present."""
    from meiqia.models import AgentGroup

    present = {seat.id for seat in capacity.seats(team_id)}
    if present or groups_only:
        groups = {c.group_id for c in waiting if c.group_id is not None}
        served = {group_id for (group_id,) in AgentGroup.select(AgentGroup.group).where(
            AgentGroup.group.in_(groups), AgentGroup.agent.in_(present)).tuples()} \
            if groups and present else set()
        waiting = [c for c in waiting if c.group_id is not None and c.group_id not in served]
    told = 0
    for conversation in waiting:
        on_channel = waits_on_its_channel(conversation)
        if on_channel and not _awaits_an_answer(conversation):
            continue  # checked before the claim: his next message must still be told
        claimed = Conversation.update(offered_at=now).where(
            Conversation.id == conversation.id, Conversation.status == "queued",
            untold).execute()
        if not claimed:
            continue
        if on_channel:
            _tell_waiting(conversation)  # no form on a channel: he keeps waiting
        else:
            offer_ticket(conversation, capacity.NOBODY_ONLINE)
        told += 1
    return told


def _awaits_an_answer(conversation: Conversation) -> bool:
    """Whether a channel's customer is waiting for an answer nobody gave yet: what
    he sees last is his own message (a handover line after it counts for nothing).
    Only then is he told, on an agent's departure, that his chat waits. A customer
    who had the last word from us, or was told already, is not written to: on
    e-mail each line is a mail, and an agent whose tab closes and opens is no news
    to him."""
    for message in _latest_public(conversation):
        if _system_event(message) == "handover":
            continue
        return message.sender_kind == "visitor"
    return False


def requeue_handled_by(agent: Agent) -> list[int]:
    """An away agent's open chats go back to the queue, ahead of later arrivals
    (``AGENT_AWAY_OPEN_CHATS = "requeue"``), and are routed again at once.
    Returns their ids.

    The look-up happens under the team's routing lock: an assignment to him
    that read his socket as alive just before it expired commits first, and is
    found here, instead of staying with an agent who is gone.
    """
    moved = []
    with team_transaction(agent.team_id):
        for conversation in list(Conversation.select().where(
                Conversation.handler == agent.id, Conversation.status == "open")):
            if Conversation.update(
                    handler=None, status="queued",
                    queued_at=conversation.queued_at or conversation.created_at,
            ).where(Conversation.id == conversation.id, Conversation.handler == agent.id,
                    Conversation.status == "open").execute():
                moved.append(conversation)
    # Each change is told once (one event reaches every socket, in every process):
    # each moved chat's state, then what routing changed (assign_waiting tells
    # the chats it assigned and the new places in their queues), then the new
    # places of the chats the moved ones went ahead of, in the queues routing
    # did not tell, leaving out a moved chat still where its own state said.
    told: dict[int, int | None] = {}
    for conversation in moved:
        post_message(conversation, "system", "", kind="event", visibility="internal",
                     payload={"event": "requeued", "from": agent.display_name,
                              "reason": "away"})
        told[conversation.id] = publish_state(
            Conversation.get_by_id(conversation.id))["queue_position"]
    if moved:
        routed = {c.group_id for c in assign_waiting(agent.team_id)}
        still = Conversation.select(Conversation.group).where(
            Conversation.id.in_([c.id for c in moved]), Conversation.status == "queued").tuples()
        publish_queue(agent.team_id, {group_id for (group_id,) in still} - routed, told)
    return [c.id for c in moved]


# A freed place (end, transfer, limit raised, agent online) assigns the queue head.
if assign_waiting not in events.capacity_listeners:
    events.capacity_listeners.append(assign_waiting)

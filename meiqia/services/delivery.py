"""Delivery: message positions, per-socket order and resume, in one place (issue 13).

Every message gets ``seq``, its position in its conversation (1, 2, 3 … with no
gap), in the transaction that stores it: ``next_position`` bumps
``conversation.last_seq`` with an UPDATE, which takes the conversation's row lock
(PostgreSQL) or the database's write lock (SQLite) until commit. So two senders
of one conversation are serialised, ``seq`` order is commit order, and when seq
``n`` is visible every seq below it is committed and visible too.

The hub may still hand a socket seq 8 before seq 7 (two publishers race after
their commits). ``Stream`` is each socket's writer: per conversation it sends
message frames strictly in seq order, each once; a frame that arrives ahead of
a gap first gets the gap filled from the database (complete, by the rule above),
and a frame at or below the socket's position is dropped as already sent. So
the position a client holds (the highest ``seq`` it received for a
conversation) is a safe resume point by construction: ``resume`` sends
everything after it, then live frames continue from there.

The sending socket's own message goes out as its ``ack`` (in its place in the
order), never also as a ``message``; the sender's other sockets get the
``message``. docs/protocol.md ("Positions and resume") is the contract.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from meiqia.db import database
from meiqia.db import is_postgres
from meiqia.db import lock_bound
from meiqia.db import statement
from meiqia.services.validation import INT_MAX

#: Messages read per database page when filling a gap or resuming.
PAGE = 500
#: Conversations an agent socket may name in ``after_seq`` (the URL stays short).
MAX_NAMED = 200
#: Messages a socket may have sent and not yet seen acknowledged (``Stream.expect_own``).
MAX_OWN = 1000

#: ``fill(conversation_id, after, before, limit)``: the views of the messages with
#: ``after < seq < before`` (``before`` None: no upper bound) this socket may see, in
#: seq order, at most ``limit``; each view has ``seq`` and ``conversation_id``.
Fill = Callable[[int, int, "int | None", int], list[dict]]


def next_position(conversation_id: int, message_at: Any = None, bounded: bool = False
                  ) -> tuple[int, int | None, int | None, str, int | None] | None:
    """Take the conversation's lock and its next ``seq``; call inside the transaction
    that stores the message, before the INSERT (so ids follow seqs as well).

    Returns (seq, handler id, group id, status, message id) as they are now, or
    None when the conversation is gone. With ``message_at`` on PostgreSQL the same
    UPDATE also takes the new message's id from its sequence and records it as
    the conversation's last message (at ``message_at``): the caller INSERTs
    with that id, and the store is one round trip shorter (a statement of its
    own for ``last_message_id`` after the INSERT was one more wait per message,
    with the conversation's row locked). Elsewhere the id is None.
    ``bounded``: the caller's transaction is the store's own, and its lock waits
    end after DATABASE_BUSY_TIMEOUT (``db.lock_bound``, PostgreSQL).
    """
    reserve = message_at is not None and is_postgres()

    def build() -> str:
        taken = (', "last_message_id" = nextval(pg_get_serial_sequence(\'message\', \'id\')), '
                 f'"last_message_at" = {database.param}') if reserve else ""
        return ((lock_bound() if bounded else "")
                + f'UPDATE "conversation" SET "last_seq" = "last_seq" + 1{taken} '
                f'WHERE "id" = {database.param} RETURNING "last_seq", "handler_id", '
                '"group_id", "status", "last_message_id"')

    sql = statement(("next_position", reserve, bounded), build)
    params = [message_at, conversation_id] if reserve else [conversation_id]
    row = database.execute_sql(sql, params).fetchone()
    if row is None:
        return None
    seq, handler, group, status, last_id = row
    return seq, handler, group, status, (last_id if reserve else None)


def store_at_next_position(model: Any, conversation_id: int, message_at: Any,
                           values: dict[str, Any], while_status: str | None = None,
                           refuse_ended: bool = False
                           ) -> tuple[int, int, int | None, int | None, str] | None:
    """PostgreSQL: ``next_position`` and the message's INSERT as one statement.

    Outside a transaction a single statement commits by itself, so the four
    round trips of the two-statement store (BEGIN, the position UPDATE, the
    INSERT, COMMIT) become one; the guarantees are the same: the UPDATE takes the
    conversation's row lock, the INSERT runs under it and the lock is released at
    the statement's commit, so seq order is still commit order; a unique
    violation (a resent ``client_msg_id``) undoes the position with the row.
    ``values`` are the message's columns without ``id`` and ``seq`` (taken from
    the UPDATE). With ``while_status`` the UPDATE only matches the conversation
    in that status, with ``refuse_ended`` only one that has not ended. Returns
    (message id, seq, handler id, group id, status), or None when no conversation
    matched (gone, or in a status refused). The parameters are cast to their
    columns' types (peewee's own names for them): ``INSERT ... SELECT`` does not
    coerce untyped literals the way ``VALUES`` does. The statement waits for the
    row lock at most DATABASE_BUSY_TIMEOUT (``db.lock_bound``: sent with it, in
    its implicit transaction), then raises as a busy SQLite does.
    """
    meta = model._meta
    fields = [meta.fields[name] for name in values]

    def build() -> str:
        mark = database.param
        types = database.get_context_options()["field_types"]
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        casts = ", ".join(f"CAST({mark} AS {types[f.field_type]})" for f in fields)
        only = f' AND "status" = {mark}' if while_status is not None else ""
        only += " AND \"status\" <> 'ended'" if refuse_ended else ""
        return (
            lock_bound()
            + 'WITH "pos" AS (UPDATE "conversation" SET "last_seq" = "last_seq" + 1, '
            f'"last_message_id" = nextval(pg_get_serial_sequence(\'{meta.table_name}\', \'id\')), '
            f'"last_message_at" = {mark} WHERE "id" = {mark}{only} RETURNING "last_seq", '
            '"handler_id", "group_id", "status", "last_message_id") '
            f'INSERT INTO "{meta.table_name}" ("id", "seq", {columns}) '
            f'SELECT "pos"."last_message_id", "pos"."last_seq", {casts} FROM "pos" '
            'RETURNING "id", "seq", (SELECT "handler_id" FROM "pos"), '
            '(SELECT "group_id" FROM "pos"), (SELECT "status" FROM "pos")')

    sql = statement(("store_at_next_position", model, tuple(values), while_status is not None,
                     refuse_ended), build)
    params = [message_at, conversation_id] + ([while_status] if while_status is not None else [])
    params += [f.db_value(v) for f, v in zip(fields, values.values(), strict=True)]
    return database.execute_sql(sql, params).fetchone()


#: The largest id or position a client may name: a database integer.
MAX_POSITION = INT_MAX


def parse_positions(text: str | None) -> dict[int, int]:
    """``"17:40,18:3"`` (conversation id ``:`` seq, comma-separated) as {17: 40, 18: 3}.

    Raises ValueError on anything else, on a number past MAX_POSITION, or on more
    than MAX_NAMED pairs.
    """
    if not text:
        return {}
    pairs: dict[int, int] = {}
    for part in text.split(","):
        cid, sep, seq = part.partition(":")
        if not sep or not cid.isdigit() or not seq.isdigit():
            raise ValueError("after_seq: conversation_id:seq pairs separated by commas")
        if int(cid) > MAX_POSITION or int(seq) > MAX_POSITION:
            raise ValueError("after_seq: ids and positions are whole numbers up to 2147483647")
        pairs[int(cid)] = int(seq)
    if len(pairs) > MAX_NAMED:
        raise ValueError(f"after_seq: at most {MAX_NAMED} conversations")
    return pairs


def parse_position(text: str) -> int:
    """A visitor socket's ``after_seq``: one position, 0 to MAX_POSITION.

    Raises ValueError on anything else (it was ignored once, and a typo then
    replayed the whole conversation without a word)."""
    if not text.isdigit() or int(text) > MAX_POSITION:
        raise ValueError("after_seq: a whole number from 0 to 2147483647")
    return int(text)


class Stream:
    """One socket's message frames: per conversation in seq order, each once.

    ``send(kind, data, msg_id)`` writes a frame; ``fill`` reads what a gap or a
    resume needs (see ``Fill``); ``start(conversation_id)`` is the position of a
    conversation the socket has not been told about (what the client already has:
    the agent socket's snapshot at connect, else 0); ``on_sent(views)`` runs after
    frames went out (the visitor socket marks them delivered).
    Thread-safe: the hub pump and the frame loop both write through it.

    The message the socket is storing now (``expect_own``) may come by before
    its store returns: stored by this send, or by another tab's send of the same
    ``client_msg_id`` a moment earlier. Only the outcome says which, and its
    ``ack`` says it (``duplicate``), once, in its place: so its frame, and
    everything after it in its conversation, waits (``_held``) until ``ack``,
    ``forget_own`` or ``settle`` says how the send ended. Sent at once as the ack,
    a second tab's send was acknowledged twice, first as new (``duplicate:
    false``) and then as the duplicate it was.
    """

    def __init__(self, send: Callable[[str, dict, int | None], None], fill: Fill,
                 start: Callable[[int], int] | None = None,
                 on_sent: Callable[[list[dict]], None] | None = None) -> None:
        self._send = send
        self._fill = fill
        self._start = start or (lambda _cid: 0)
        self._on_sent = on_sent
        self.lock = threading.RLock()
        self.positions: dict[int, int] = {}
        #: (conversation id, client_msg_id) of messages this socket is sending now:
        #: they go out as its ``ack``, not as a ``message``.
        self._own: dict[tuple[int, str], None] = {}  # insertion order: oldest first
        #: The one message whose store is under way (a socket handles one frame at
        #: a time), until its outcome is known; None otherwise.
        self._sending: tuple[int, str] | None = None
        #: Per conversation: what came by from that message on, in arrival order,
        #: while its outcome was not known; None: catch up from the database.
        self._held: dict[int, list[dict | None]] = {}

    def position(self, conversation_id: int) -> int:
        with self.lock:
            if conversation_id not in self.positions:
                self.positions[conversation_id] = self._start(conversation_id)
            return self.positions[conversation_id]

    def resume(self, conversation_id: int, after_seq: int, last_seq: int | None = None) -> int:
        """Send every message of the conversation after ``after_seq``, oldest first,
        and continue live from there. This is THE resume: on connect, and for a
        hub that lost events (call it again with the socket's position: it sends
        what is missing and nothing twice). Returns the messages sent.

        ``last_seq`` is the conversation's last position, read after the socket
        subscribed: a client's position beyond it (a position of another
        conversation, a stale or a made-up one) is taken as it. Kept as it was,
        every later message at or below it was dropped as "sent already": no
        ``ack`` for the client's own messages, no live message, no error."""
        if last_seq is not None:
            after_seq = min(after_seq, last_seq)
        with self.lock:
            self.positions[conversation_id] = max(0, after_seq)
            return self._catch_up(conversation_id, None)

    def catch_up(self, conversation_id: int) -> int:
        """Send what the conversation has beyond this socket's position (a resync
        after a hub gap). Unlike ``resume`` it never moves the position back: read
        and used under one lock, so an ``ack`` the frame loop sends meanwhile is
        not sent again as a ``message``."""
        with self.lock:
            self.position(conversation_id)
            return self._catch_up(conversation_id, None)

    def catch_up_all(self) -> int:
        """``resume`` every conversation this socket has a position for (a resync
        after a hub outage: whatever the hub dropped comes from the database)."""
        with self.lock:
            return sum(self._catch_up(cid, None) for cid in list(self.positions))

    def deliver(self, view: dict) -> None:
        """A live message frame (from the hub): in its place, once."""
        seq = view.get("seq")
        if seq is None:  # written outside post_message: not positioned
            self._send("message", view, view.get("id"))
            return
        with self.lock:
            cid = view["conversation_id"]
            if cid in self._held:
                self._held[cid].append(view)  # behind the message being sent
                return
            position = self.position(cid)
            if seq <= position:
                return  # sent already (live, by a fill, or as our ack)
            if seq > position + 1:
                self._catch_up(cid, seq)
                if cid in self._held:  # the fill met the message being sent
                    self._held[cid].append(view)
                    return
            if self._holds(view):
                self._held[cid] = [view]
                return
            self._emit([view])
            self.positions[cid] = seq

    def expect_own(self, conversation_id: int, client_msg_id: str) -> None:
        """This socket is about to store a message: when it comes by, it is the ack.
        The oldest are forgotten past MAX_OWN (a client sending frame after frame
        that fail on the database). Until ``ack``, ``forget_own`` or ``settle``
        it is the message being sent (see the class)."""
        with self.lock:
            self.settle()
            self._own[(conversation_id, client_msg_id)] = None
            if len(self._own) > MAX_OWN:
                del self._own[next(iter(self._own))]
            self._sending = (conversation_id, client_msg_id)

    def forget_own(self, conversation_id: int, client_msg_id: str) -> None:
        """The send failed and stored nothing: its message, if it comes by (another
        tab stored it), is a ``message`` for this socket."""
        with self.lock:
            self._own.pop((conversation_id, client_msg_id), None)
            if self._sending == (conversation_id, client_msg_id):
                self._sending = None
                self._release(conversation_id)

    def settle(self) -> None:
        """The frame that was storing a message ended without ``ack`` or
        ``forget_own`` (the database failed: it may be stored all the same). The
        message stays this socket's own, as before a resend: if it comes by, it is
        the ack (docs/protocol.md, guarantee 2)."""
        with self.lock:
            if self._sending is not None:
                cid = self._sending[0]
                self._sending = None
                self._release(cid)

    def ack(self, view: dict, duplicate: bool) -> None:
        """Acknowledge a message this socket sent, in its place in the order.

        A new message's ack may have gone out already (the hub was quicker than
        the caller, and its send's outcome was known): then nothing more is
        sent. A duplicate at or below the position is acknowledged at once (it
        moves nothing). What waited for this outcome follows the ack."""
        cid, seq = view["conversation_id"], view.get("seq")
        key = (cid, view.get("client_msg_id") or "")
        with self.lock:
            held: list[dict | None] = []
            if self._sending == key:
                self._sending = None
                held = self._held.pop(cid, [])
            try:
                if seq is None or (duplicate and seq <= self.position(cid)):
                    self._own.pop(key, None)
                    self._send("ack", {"client_msg_id": view.get("client_msg_id"),
                                       "message": view, "duplicate": duplicate}, None)
                    return
                self._own[key] = None
                if seq <= self.position(cid):
                    self._own.pop(key, None)
                    return
                if seq > self.position(cid) + 1:
                    self._catch_up(cid, seq)
                self._emit([view], duplicate)
                self.positions[cid] = seq
            finally:
                self._replay(cid, held)  # its own frame among them: at the position now

    # -- inside the lock ------------------------------------------------------------

    def _holds(self, view: dict) -> bool:
        """Whether ``view`` is the message being sent, which waits for its outcome."""
        return self._sending is not None and bool(view.get("client_msg_id")) and \
            self._sending == (view["conversation_id"], view["client_msg_id"])

    def _release(self, cid: int) -> None:
        self._replay(cid, self._held.pop(cid, []))

    def _replay(self, cid: int, held: list[dict | None]) -> None:
        """What waited for a send's outcome, in its place now (``deliver`` drops
        what went out meanwhile and fills gaps)."""
        for view in held:
            if view is None:
                self._catch_up(cid, None)
            else:
                self.deliver(view)

    def _catch_up(self, cid: int, before: int | None) -> int:
        """Send what lies between the position and ``before`` (None: everything)."""
        held = self._held.get(cid)
        if held is not None:  # behind the message being sent: after its outcome
            if before is None:
                held.append(None)
            return 0
        sent = 0
        while True:
            after = self.positions.get(cid, 0)
            found = self._fill(cid, after, before, PAGE)
            mine = next((n for n, view in enumerate(found) if self._holds(view)), None)
            if mine is not None:
                # The message being sent: what comes before it goes, the rest waits.
                self._emit(found[:mine])
                self.positions[cid] = found[mine]["seq"] - 1
                self._held[cid] = [*found[mine:], *([None] if before is None else [])]
                return sent + mine
            if found:
                self._emit(found)
                self.positions[cid] = found[-1]["seq"]
                sent += len(found)
            if len(found) < PAGE:
                break
        if before is not None:
            # Seqs the socket may not see (internal notes on a visitor socket) are
            # passed over: everything below ``before`` is committed and was read.
            self.positions[cid] = max(self.positions.get(cid, 0), before - 1)
        return sent

    def _emit(self, views: list[dict], duplicate: bool = False) -> None:
        for view in views:
            key = (view["conversation_id"], view.get("client_msg_id") or "")
            if view.get("client_msg_id") and key in self._own:
                self._own.pop(key, None)
                self._send("ack", {"client_msg_id": view["client_msg_id"], "message": view,
                                   "duplicate": duplicate}, None)
            else:
                self._send("message", view, view.get("id"))
        if self._on_sent is not None and views:
            self._on_sent(views)

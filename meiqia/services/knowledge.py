"""The knowledge base of a team: entries, import/export, and the live index.

Entries are rows of ``KnowledgeEntry``; the matcher (``meiqia.bot``) is a pure
library that knows nothing of the database. This module turns rows into
``KBEntry`` objects and keeps one index per team in memory that follows the
team's change log (``KnowledgeChange``): an edit is applied to the editing
process's index before its request returns, and other processes (more web
processes, rq workers) apply it within ``CHECK_SECONDS`` of their next question,
entry by entry, or rebuild in the background while they keep answering. No
question waits for a rebuild, except the very first of a process.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import peewee

from meiqia.db import database
from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import KnowledgeChange
from meiqia.models import KnowledgeEntry
from meiqia.models import Team
from meiqia.models.base import utcnow
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.errors import Conflict
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.messages import MAX_BODY
from meiqia.services.safe_json import check_text
from meiqia.services.validation import check

QUESTION = {"type": "string", "minLength": 1, "maxLength": 500}
#: An answer is sent as one chat message, so it holds at most what a message may.
ANSWER = {"type": "string", "minLength": 1, "maxLength": MAX_BODY,
          "x-max-reason": "the longest chat message"}
ENTRY_FIELDS = {
    "key": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": r"^[\w.\-]+$"},
    "questions": {"type": "array", "items": QUESTION, "minItems": 1, "maxItems": 100},
    "answer": ANSWER,
    "category": {"type": "string", "maxLength": 80},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 20},
    "enabled": {"type": "boolean"},
}
ENTRY_CREATE_SCHEMA = {
    "type": "object",
    "required": ["questions", "answer"],
    "additionalProperties": False,
    "properties": ENTRY_FIELDS,
}
ENTRY_UPDATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {k: v for k, v in ENTRY_FIELDS.items() if k != "key"},
}


def _clean_questions(questions: list[str]) -> list[str]:
    """Trim, drop blanks and repeats (first kept), keep the standard question first."""
    seen: set[str] = set()
    result = []
    for question in questions:
        text = " ".join(question.split())
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            result.append(text)
    if not result:
        raise ValidationError("questions: at least one non-empty question", "questions")
    return result


def check_entry(data: dict[str, Any], schema: dict[str, Any] = ENTRY_CREATE_SCHEMA) -> None:
    """The checks every entry passes, typed in (API, CLI) or imported from a file:
    storable text (no NUL or lone surrogate), ``schema`` (types, lengths, counts,
    the id's format), at least one question that is not blank and an answer that
    is not blank: the answer is stored stripped, and an empty one is nothing the
    bot could say (the schema's ``minLength`` counts white space)."""
    check_text(data)
    check(data, schema)
    if "questions" in data:
        _clean_questions(data["questions"])
    if "answer" in data and not data["answer"].strip():
        raise ValidationError("answer: must not be empty", "answer")


def _new_key(questions: list[str]) -> str:
    ascii_part = re.sub(r"[^a-z0-9]+", "-", questions[0].lower()).strip("-")[:40]
    return f"{ascii_part or 'entry'}-{uuid.uuid4().hex[:6]}"


def entry_to_dict(entry: KnowledgeEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "key": entry.key,
        "questions": entry.questions,
        "standard_question": entry.questions[0] if entry.questions else "",
        "answer": entry.answer,
        "category": entry.category,
        "tags": entry.tags or [],
        "enabled": entry.enabled,
        "updated_at": iso(entry.updated_at),
    }


def get_entry(actor: Agent, entry_id: int) -> KnowledgeEntry:
    entry = KnowledgeEntry.get_or_none(
        KnowledgeEntry.id == entry_id, KnowledgeEntry.team == actor.team_id
    )
    if entry is None:
        raise NotFound("no such knowledge-base entry")
    return entry


def list_entries(
    actor: Agent, q: str = "", category: str = "", page: int = 1, per_page: int = 50
) -> dict[str, Any]:
    query = KnowledgeEntry.select().where(KnowledgeEntry.team == actor.team_id)
    if category:
        query = query.where(KnowledgeEntry.category == category)
    if q:
        # Wrapped in LOWER() so peewee does not JSON-encode the pattern.
        needle = q.lower()
        query = query.where(
            peewee.fn.LOWER(KnowledgeEntry.questions).contains(needle)
            | peewee.fn.LOWER(KnowledgeEntry.answer).contains(needle)
            | (KnowledgeEntry.key == q)
        )
    total = query.count()
    rows = query.order_by(KnowledgeEntry.category, KnowledgeEntry.id).paginate(page, per_page)
    categories = [
        c for (c,) in KnowledgeEntry.select(KnowledgeEntry.category)
        .where(KnowledgeEntry.team == actor.team_id)
        .distinct()
        .order_by(KnowledgeEntry.category)
        .tuples()
    ]
    return {
        "total": total,
        "page": page,
        "per_page": per_page,
        "categories": categories,
        "items": [entry_to_dict(e) for e in rows],
    }


def create_entry(actor: Agent, data: dict[str, Any]) -> KnowledgeEntry:
    require_admin(actor)
    check_entry(data, ENTRY_CREATE_SCHEMA)
    questions = _clean_questions(data["questions"])
    key = data.get("key") or _new_key(questions)
    if KnowledgeEntry.select().where(
        KnowledgeEntry.team == actor.team_id, KnowledgeEntry.key == key
    ).exists():
        raise Conflict("key: an entry with this id exists", "key")
    with database.atomic():
        entry = KnowledgeEntry.create(
            team=actor.team_id,
            key=key,
            questions=questions,
            answer=data["answer"].strip(),
            category=data.get("category", "").strip(),
            tags=data.get("tags", []),
            enabled=data.get("enabled", True),
        )
        audit(actor, "kb.create", "knowledge_entry", entry.id)
        record_changes(actor.team_id, [key])
    refresh(actor.team_id)
    return entry


def update_entry(actor: Agent, entry_id: int, data: dict[str, Any]) -> KnowledgeEntry:
    require_admin(actor)
    check_entry(data, ENTRY_UPDATE_SCHEMA)
    entry = get_entry(actor, entry_id)
    if "questions" in data:
        entry.questions = _clean_questions(data["questions"])
    if "answer" in data:
        entry.answer = data["answer"].strip()
    for key in ("category", "tags", "enabled"):
        if key in data:
            setattr(entry, key, data[key].strip() if key == "category" else data[key])
    entry.updated_at = utcnow()
    with database.atomic():
        entry.save()
        audit(actor, "kb.update", "knowledge_entry", entry.id)
        record_changes(actor.team_id, [entry.key])
    refresh(actor.team_id)
    return entry


def delete_entry(actor: Agent, entry_id: int) -> None:
    require_admin(actor)
    entry = get_entry(actor, entry_id)
    with database.atomic():
        entry.delete_instance()
        audit(actor, "kb.delete", "knowledge_entry", entry_id)
        record_changes(actor.team_id, [entry.key])
    refresh(actor.team_id)


# --- the KB version and the live index ---------------------------------------------
#
# Every change is a row of ``KnowledgeChange`` written in the same transaction as
# the entry, after a per-team lock, so a team's change ids are in commit order:
# the newest id is the KB version. Each process keeps one index per team with
# the version it reflects; seeing a newer version, it applies the entries changed
# since (milliseconds), or rebuilds in a background thread while it keeps
# answering from the index it has. The process that made the edit applies it
# before the edit's request returns, so the next question sees it.

#: Seconds between checks of a team's KB version by a process (other processes'
#: edits show within about this time).
CHECK_SECONDS = 0.5
#: More changed entries than this since a process's index: rebuild it (in the
#: background) instead of applying them one by one.
PATCH_MAX = 200
#: Change rows are kept this long; a process that has not looked at a team's
#: version for half of it rebuilds instead of catching up.
KEEP_CHANGES = datetime.timedelta(days=7)
#: First key of PostgreSQL's advisory lock serialising a team's KB writers.
_PG_LOCK_CLASS = 0x6B62  # "kb"


def _lock_changes(team_id: int) -> None:
    """Serialise the team's KB writers until the transaction ends.

    A change row's id is drawn from a sequence when it is inserted, not when it
    commits; without the lock a reader could see id 11 committed while id 10
    was still open, take 11 as its version and never apply 10. SQLite needs no
    lock: its write transactions are serial (BEGIN IMMEDIATE).
    """
    if is_postgres():
        database.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", (_PG_LOCK_CLASS, team_id))


def record_changes(team_id: int, keys: list[str] | None, kind: str = "edit",
                   base: int | None = None) -> int:
    """Log changed entries (``keys``; None: too many, rebuild) in the caller's
    transaction and return the new KB version."""
    _lock_changes(team_id)
    if keys is None or len(keys) > PATCH_MAX:
        rows = [{"team": team_id, "entry_key": "", "kind": kind if keys is None else "import",
                 "base": base}]
    else:
        rows = [{"team": team_id, "entry_key": key, "kind": kind} for key in dict.fromkeys(keys)]
    if not rows:
        return kb_version(team_id)
    KnowledgeChange.insert_many(rows).execute()
    version = kb_version(team_id)
    if version % 64 == 0:  # now and then: forget old changes, never the newest
        KnowledgeChange.delete().where(
            KnowledgeChange.team == team_id, KnowledgeChange.id < version,
            KnowledgeChange.created_at < utcnow() - KEEP_CHANGES).execute()
    return version


def kb_version(team_id: int) -> int:
    """The team's KB version: the id of its newest change (0 before any)."""
    return int(KnowledgeChange.select(peewee.fn.MAX(KnowledgeChange.id))
               .where(KnowledgeChange.team == team_id).scalar() or 0)


class _TeamIndex:
    """A process's index of one team and what it reflects."""

    __slots__ = ("applied", "built", "catching_up", "checked_at", "index", "rebuilding",
                 "version")

    def __init__(self, index: Any, version: int, built: int | None = None) -> None:
        self.index = index
        #: Every change up to this version is in the index.
        self.version = version
        #: The version of the index's last full build from the database.
        self.built = version if built is None else built
        #: Per-entry changes up to here are patched in (ahead of ``version``
        #: while a background rebuild is on its way).
        self.applied = version
        self.checked_at = time.monotonic()
        self.rebuilding = False
        self.catching_up = False


class _Store:
    """One application's indexes (one app = one database) and their locks."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.indexes: dict[int, _TeamIndex] = {}
        self.guard = threading.Lock()
        self.locks: dict[int, threading.Lock] = {}

    def lock(self, team_id: int) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(team_id, threading.Lock())


_stores_guard = threading.Lock()


def _store() -> _Store | None:
    """This application's index store; None outside an application (rq worker)."""
    from flask import current_app
    from flask import has_app_context

    if not has_app_context():
        return None
    with _stores_guard:
        store = current_app.extensions.get("meiqia.kb_indexes")
        if not isinstance(store, _Store):
            store = current_app.extensions["meiqia.kb_indexes"] = _Store(
                current_app._get_current_object())
        return store


def _kb_entry(row: KnowledgeEntry) -> Any:
    from meiqia.bot.kbfile import KBEntry

    return KBEntry(id=row.key, questions=list(row.questions), answer=row.answer,
                   category=row.category, tags=list(row.tags or []), enabled=row.enabled)


def _as_kb_entries(team_id: int) -> list[Any]:
    rows = KnowledgeEntry.select().where(
        KnowledgeEntry.team == team_id, KnowledgeEntry.enabled == True  # noqa: E712
    )
    return [_kb_entry(row) for row in rows]


def bot_settings(team_id: int) -> tuple[Any, float]:
    """The team's lexicon (synonyms, product words) and target precision."""
    from meiqia.bot.lexicon import Lexicon
    from meiqia.services.teams import settings_of

    team = Team.get_or_none(Team.id == team_id)
    settings = settings_of(team) if team is not None else settings_of(Team(settings={}))
    return (Lexicon(settings["bot_synonyms"], settings["bot_user_words"]),
            float(settings["bot_target_precision"]))


def _build(team_id: int, progress: Any = None, previous: _TeamIndex | None = None
           ) -> _TeamIndex:
    """A full build from the database, labelled with the version read first
    (anything committed after it is applied again by the next catch-up).

    The fresh index answers at once on the scale of ``previous`` (or the
    default one) while it calibrates itself in a background thread
    (``meiqia.bot.calibrate``); the knowledge-base page shows the result.
    """
    from meiqia.bot.index import KBIndex

    version = kb_version(team_id)
    lexicon, target = bot_settings(team_id)
    before = previous.index.calibration if previous is not None else None
    if before is not None and before.target != target:
        before = None
    index = KBIndex(_as_kb_entries(team_id), progress=progress, lexicon=lexicon,
                    calibration=before)
    index.calibrate_in_background(target)
    return _TeamIndex(index, version)


def calibration_report(actor: Agent) -> dict[str, Any]:
    """The calibration of the team's index in this process, for the KB page:
    whether it is running, the thresholds it set and the competing entries.

    ``running`` is also true while a rebuild is on its way (after an import, a
    reindex elsewhere, a change of the team's words): the figures shown are
    then the old index's, and the new index calibrates itself once built
    (``progress_message`` "rebuilding the index")."""
    index = index_for(actor.team_id)
    store = _store()
    cached = store.indexes.get(actor.team_id) if store is not None else None
    rebuilding = bool(cached is not None and cached.index is index and
                      (cached.rebuilding or cached.version < kb_version(actor.team_id)))
    _, target = bot_settings(actor.team_id)
    data = index.calibration.to_dict()
    data["running"] = bool(index.calibrating) or rebuilding
    fraction, message = getattr(index, "calibration_progress", (0.0, ""))
    if rebuilding and not index.calibrating:
        fraction, message = 0.0, "rebuilding the index"
    data["progress"] = round(fraction, 3) if data["running"] else 1.0
    data["progress_message"] = message if data["running"] else ""
    data["entries"] = len(index)
    data["variants"] = index.variant_count
    data["team_target"] = target
    return data


def index_for(team_id: int) -> Any:
    """The team's current index, for a question (never waits for a rebuild).

    Server processes build it as they start (``warm_up``); elsewhere the first
    question of a process builds it. Later questions get it at
    once, and at most every ``CHECK_SECONDS`` one of them also reads the KB
    version: when it is newer, a background thread catches the index up while
    the questions keep being answered from the index as it is.
    """
    store = _store()
    if store is None:
        return _build(team_id).index
    cached = store.indexes.get(team_id)
    if cached is None:
        with store.lock(team_id):
            cached = store.indexes.get(team_id)
            if cached is None:
                cached = store.indexes[team_id] = _build(team_id)
            return cached.index
    now = time.monotonic()
    if now - cached.checked_at < CHECK_SECONDS:
        return cached.index
    stale = now - cached.checked_at > KEEP_CHANGES.total_seconds() / 2
    cached.checked_at = now
    if stale:
        _rebuild_in_background(store, team_id, cached)
    elif kb_version(team_id) > cached.version and not cached.catching_up:
        cached.catching_up = True
        _in_background(store, team_id, "catch-up", lambda: _catch_up(store, team_id))
    return cached.index


def refresh(team_id: int) -> None:
    """Bring this process's index of the team up to the KB version now.

    Called after every committed edit, so the editor's next question already
    sees it; an edit inside an outer transaction is applied by the caller after
    the commit (a rolled-back edit must never reach the index).
    """
    store = _store()
    if store is None or database.in_transaction():
        return
    _catch_up(store, team_id)  # waits for a first build in progress, if any


def _catch_up(store: _Store, team_id: int) -> None:
    with store.lock(team_id):
        cached = store.indexes.get(team_id)
        if cached is None:
            return
        try:
            _catch_up_locked(store, team_id, cached)
        finally:
            cached.catching_up = False


def _catch_up_locked(store: _Store, team_id: int, cached: _TeamIndex) -> None:
    """Apply the changes after ``cached.version`` (team lock held)."""
    latest = kb_version(team_id)
    if latest <= cached.version:
        return
    changes = list(KnowledgeChange.select(KnowledgeChange.id, KnowledgeChange.entry_key,
                                          KnowledgeChange.kind, KnowledgeChange.base)
                   .where(KnowledgeChange.team == team_id,
                          KnowledgeChange.id > cached.version,
                          KnowledgeChange.id <= latest)
                   .order_by(KnowledgeChange.id))
    full = any(not c.entry_key and cached.built < (c.base if c.kind == "reindex" and
                                                  c.base is not None else c.id)
               for c in changes)
    keys = list(dict.fromkeys(c.entry_key for c in changes
                              if c.entry_key and c.id > cached.applied))
    if full or len(keys) > PATCH_MAX:
        _rebuild_in_background(store, team_id, cached)
    if len(keys) <= PATCH_MAX:
        rows = {row.key: row for row in KnowledgeEntry.select().where(
            KnowledgeEntry.team == team_id, KnowledgeEntry.key.in_(keys))} if keys else {}
        cached.index.apply({key: _kb_entry(rows[key]) if key in rows else None
                            for key in keys})
        cached.applied = max(cached.applied, latest)
        if not (full or cached.rebuilding):
            cached.version = latest


def _rebuild_in_background(store: _Store, team_id: int, cached: _TeamIndex) -> None:
    """Start one full rebuild of the team's index; the old one answers meanwhile."""
    if cached.rebuilding:
        return
    cached.rebuilding = True
    _in_background(store, team_id, "rebuild", lambda: _install(
        store, team_id, _build(team_id, previous=cached), cached))


def _install(store: _Store, team_id: int, fresh: _TeamIndex,
             replaces: _TeamIndex | None = None) -> None:
    """Catch a full build up and swap it in (unless a fresher one is there).

    Caught up *before* the swap: the build read the entries as they were when
    it started, and an edit made since (patched into the index it replaces, so
    its editor's next question saw it) must not vanish while the fresh index
    applies it: questions read the swapped-in index without the lock.
    ``replaces``: the index whose background rebuild this is (its flag is
    cleared whether or not the build is swapped in).
    """
    with store.lock(team_id):
        if replaces is not None:
            replaces.rebuilding = False
        cached = store.indexes.get(team_id)
        if cached is None or fresh.built >= cached.built:
            _catch_up_locked(store, team_id, fresh)
            store.indexes[team_id] = fresh
        else:
            _catch_up_locked(store, team_id, cached)


def _in_background(store: _Store, team_id: int, what: str, func: Any) -> None:
    """Run ``func()`` in a daemon thread with the app and a database connection.

    A failure is logged and the index keeps answering as it is; the next
    question's version check tries again.
    """
    from meiqia.db import connection

    def run() -> None:
        try:
            with store.app.app_context(), connection():
                func()
        except Exception:  # noqa: BLE001 - the old index keeps answering
            store.app.logger.exception("knowledge base index of team %s: %s failed",
                                       team_id, what)
            cached = store.indexes.get(team_id)
            if cached is not None:
                cached.rebuilding = cached.catching_up = False
                cached.checked_at = 0.0

    threading.Thread(target=run, name=f"kb-{what}-{team_id}", daemon=True).start()


def warm_up(app: Any) -> threading.Thread:
    """Build the index of every team with enabled entries, in a thread, as a server
    process starts (``meiqia run``, ``meiqia.wsgi``; ``BOT_WARM_UP``).

    Otherwise a process's first question builds it while the visitor waits: a
    fraction of a second on the demo KB, 2.5 s at 100,000 question variants, and
    every web process pays it after each restart. A question that comes during the
    warm-up waits on the same per-team lock, never longer than it would have.
    """
    import logging

    from meiqia.db import connection

    log = logging.getLogger(__name__)

    def run() -> None:
        with app.app_context():
            try:
                with connection():
                    team_ids = [row.team_id for row in KnowledgeEntry.select(
                        KnowledgeEntry.team).where(KnowledgeEntry.enabled == True)  # noqa: E712
                        .distinct()]
                for team_id in team_ids:
                    started = time.monotonic()
                    with connection():
                        index_for(team_id)
                    log.info("bot: index of team %s ready in %.1f s", team_id,
                             time.monotonic() - started)
            except Exception:  # noqa: BLE001 - the first question builds it then
                log.exception("bot: warming the indexes failed")

    thread = threading.Thread(target=run, name="kb-warm-up", daemon=True)
    thread.start()
    return thread


def forget_indexes() -> None:
    """Drop every cached index of this application (the next question rebuilds)."""
    store = _store()
    if store is not None:
        with store.guard:
            store.indexes.clear()


def import_file(team: Team, path: str | Path, actor: Agent | None = None,
                replace: bool = False) -> dict[str, int]:
    """Import a KB file (YAML, CSV, XLSX) whole or not at all.

    Entries are matched by id: existing ones are updated, new ones created; with
    ``replace`` the entries not in the file are removed. Every entry passes the
    checks of ``POST /api/v1/knowledge`` (``check_entry``); the problems of the
    file and of its entries are reported together, by line, as a ``KBFileError``.
    """
    from meiqia.bot.kbfile import load_kb

    entries = load_kb(path)  # raises KBFileError naming the lines; nothing written
    _check_entries(entries, str(path))
    created = updated = removed = 0
    changed: list[str] = []
    with database.atomic():
        existing = {
            e.key: e for e in KnowledgeEntry.select().where(KnowledgeEntry.team == team.id)
        }
        for item in entries:
            row = existing.get(item.id)
            fields = {
                "questions": list(item.questions),
                "answer": item.answer,
                "category": item.category or "",
                "tags": list(item.tags or []),
                "enabled": item.enabled,
                "updated_at": utcnow(),
            }
            if row is None:
                KnowledgeEntry.create(team=team.id, key=item.id, **fields)
                created += 1
            else:
                KnowledgeEntry.update(**fields).where(KnowledgeEntry.id == row.id).execute()
                updated += 1
            changed.append(item.id)
        if replace:
            keep = {item.id for item in entries}
            stale = [e.id for key, e in existing.items() if key not in keep]
            if stale:
                removed = KnowledgeEntry.delete().where(KnowledgeEntry.id.in_(stale)).execute()
                changed.extend(key for key in existing if key not in keep)
        # Up to PATCH_MAX entries: a row each, which the importing process patches
        # into its index before this returns (its next question sees them); then,
        # whatever the size, one "import" row, which makes every process rebuild
        # its index in the background, and so recalibrate it on the new entries
        # (a patched index keeps the calibration of the old KB).
        if len(changed) <= PATCH_MAX:
            record_changes(team.id, changed)
        record_changes(team.id, None, kind="import")
        if actor is not None:
            audit(actor, "kb.import", "team", team.id,
                  {"created": created, "updated": updated, "removed": removed})
    refresh(team.id)
    return {"created": created, "updated": updated, "removed": removed, "total": len(entries)}


def _check_entries(entries: list[Any], path: str) -> None:
    """Refuse a file with an entry the API would refuse: every such entry's first
    problem, at the entry's line (``line 4: id refund: answer: at most 5000
    characters (the longest chat message)``; a bad id is named by its problem alone)."""
    from meiqia.bot.kbfile import KBFileError

    errors: list[tuple[int | None, str]] = []
    for item in entries:
        body = {"key": item.id, "questions": item.questions, "answer": item.answer,
                "category": item.category, "tags": item.tags, "enabled": item.enabled}
        try:  # the id first: the others' problems are named by it
            check_text(item.id, "key")
            check(item.id, ENTRY_FIELDS["key"], "key")
        except ValidationError as exc:
            errors.append((item.line, exc.message))
            continue
        try:
            check_entry(body)
        except ValidationError as exc:
            errors.append((item.line, f"id {item.id}: {exc.message}"))
    if errors:
        raise KBFileError(path, errors)


def export_entries(team_id: int) -> list[Any]:
    from meiqia.bot.kbfile import KBEntry

    rows = KnowledgeEntry.select().where(KnowledgeEntry.team == team_id).order_by(
        KnowledgeEntry.category, KnowledgeEntry.id
    )
    return [
        KBEntry(id=r.key, questions=list(r.questions), answer=r.answer,
                category=r.category, tags=list(r.tags or []), enabled=r.enabled)
        for r in rows
    ]


def rebuild_index(team_id: int, progress: Any = None) -> dict[str, Any]:
    """Rebuild the team's index from the database and make every process follow.

    ``progress(fraction, message)`` hears how the build goes. The fresh index
    replaces this process's own; a ``reindex`` change then bumps the KB
    version, so every other process (web processes when this runs on an rq
    worker or in ``meiqia kb reindex``) rebuilds in the background while it
    keeps answering from the index it has. Returns the size and build time.
    """
    say = progress or (lambda fraction, message: None)
    say(0.0, "reading the entries")
    started = time.perf_counter()
    store = _store()
    fresh = _build(team_id, progress=lambda f, m: say(0.02 + 0.93 * f, m),
                   previous=store.indexes.get(team_id) if store is not None else None)
    elapsed = time.perf_counter() - started
    say(0.96, "publishing the new version")
    with database.atomic():
        version = record_changes(team_id, None, kind="reindex", base=fresh.version)
    if store is not None:
        _install(store, team_id, fresh)
    say(1.0, f"{len(fresh.index)} {'entry' if len(fresh.index) == 1 else 'entries'} indexed")
    return {"entries": len(fresh.index), "variants": fresh.index.variant_count,
            "build_s": round(elapsed, 3), "version": version}


def reindex_job(team_id: int) -> dict[str, Any]:
    """Job: ``rebuild_index`` with its progress on the job record (GET /jobs/<id>).

    The same in both modes: on the embedded worker thread the fresh index is
    this process's at once; on an rq worker the version bump makes the web
    processes rebuild (they cannot be handed an index across processes).
    """
    from meiqia.jobs import report_progress

    return rebuild_index(team_id, progress=report_progress)


def start_reindex(actor: Agent) -> str:
    from flask import current_app

    require_admin(actor)
    return current_app.extensions["meiqia.jobs"].enqueue(
        reindex_job, actor.team_id, description="knowledge base reindex", owner=actor)

"""The knowledge base of a team: entries, import/export, and the live index.

Entries are rows of ``KnowledgeEntry``; the matcher (``meiqia.bot``) is a pure
library that knows nothing of the database. This module turns rows into
``KBEntry`` objects, keeps one index per team in memory, and notices edits made
by any process: the index is checked against the team's KB version (entry count
and last change) at most once per ``CHECK_SECONDS``, so an edit shows in answers
within a second on every web process.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import peewee

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import KnowledgeEntry
from meiqia.models import Team
from meiqia.models.base import utcnow
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.errors import Conflict
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.validation import check

#: Seconds between checks of a team's KB version (edits show within this time).
CHECK_SECONDS = 0.5

QUESTION = {"type": "string", "minLength": 1, "maxLength": 500}
ENTRY_FIELDS = {
    "key": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": r"^[\w.\-]+$"},
    "questions": {"type": "array", "items": QUESTION, "minItems": 1, "maxItems": 100},
    "answer": {"type": "string", "minLength": 1, "maxLength": 10000},
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
    check(data, ENTRY_CREATE_SCHEMA)
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
    return entry


def update_entry(actor: Agent, entry_id: int, data: dict[str, Any]) -> KnowledgeEntry:
    require_admin(actor)
    check(data, ENTRY_UPDATE_SCHEMA)
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
    return entry


def delete_entry(actor: Agent, entry_id: int) -> None:
    require_admin(actor)
    entry = get_entry(actor, entry_id)
    with database.atomic():
        entry.delete_instance()
        audit(actor, "kb.delete", "knowledge_entry", entry_id)


def kb_version(team_id: int) -> tuple[int, str]:
    """(entry count, last change): changes whenever an entry is added, edited or removed."""
    count, last = (
        KnowledgeEntry.select(
            peewee.fn.COUNT(KnowledgeEntry.id), peewee.fn.MAX(KnowledgeEntry.updated_at)
        )
        .where(KnowledgeEntry.team == team_id)
        .tuples()
        .first()
    )
    return int(count or 0), str(last or "")


class _TeamIndex:
    __slots__ = ("checked_at", "index", "version")

    def __init__(self, version: tuple[int, str], index: Any) -> None:
        self.version = version
        self.index = index
        self.checked_at = time.monotonic()


_locks_guard = threading.Lock()


def _cache() -> tuple[dict[int, _TeamIndex], dict[int, threading.Lock]]:
    """This application's indexes and build locks (one app = one database)."""
    from flask import current_app

    with _locks_guard:
        return current_app.extensions.setdefault("meiqia.kb_indexes", ({}, {}))


def _team_lock(team_id: int) -> threading.Lock:
    locks = _cache()[1]
    with _locks_guard:
        return locks.setdefault(team_id, threading.Lock())


def _as_kb_entries(team_id: int) -> list[Any]:
    from meiqia.bot.kbfile import KBEntry

    rows = KnowledgeEntry.select().where(
        KnowledgeEntry.team == team_id, KnowledgeEntry.enabled == True  # noqa: E712
    )
    return [
        KBEntry(id=row.key, questions=list(row.questions), answer=row.answer,
                category=row.category, tags=list(row.tags or []))
        for row in rows
    ]


def index_for(team_id: int) -> Any:
    """The team's current index, rebuilt if an edit happened since it was built."""
    from meiqia.bot.index import KBIndex

    indexes = _cache()[0]
    cached = indexes.get(team_id)
    now = time.monotonic()
    if cached is not None and now - cached.checked_at < CHECK_SECONDS:
        return cached.index
    version = kb_version(team_id)
    if cached is not None and cached.version == version:
        cached.checked_at = now
        return cached.index
    with _team_lock(team_id):
        cached = indexes.get(team_id)
        if cached is not None and cached.version == version:
            return cached.index
        index = KBIndex(_as_kb_entries(team_id))
        indexes[team_id] = _TeamIndex(version, index)
        return index


def forget_indexes() -> None:
    """Drop every cached index of this application (after a bulk import)."""
    _cache()[0].clear()


def import_file(team: Team, path: str | Path, actor: Agent | None = None,
                replace: bool = False) -> dict[str, int]:
    """Import a KB file (YAML, CSV, XLSX) whole or not at all.

    Entries are matched by id: existing ones are updated, new ones created; with
    ``replace`` the entries not in the file are removed.
    """
    from meiqia.bot.kbfile import load_kb

    entries = load_kb(path)  # raises KBFileError naming the lines; nothing written
    created = updated = removed = 0
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
        if replace:
            keep = {item.id for item in entries}
            stale = [e.id for key, e in existing.items() if key not in keep]
            if stale:
                removed = KnowledgeEntry.delete().where(KnowledgeEntry.id.in_(stale)).execute()
        if actor is not None:
            audit(actor, "kb.import", "team", team.id,
                  {"created": created, "updated": updated, "removed": removed})
    return {"created": created, "updated": updated, "removed": removed, "total": len(entries)}


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


def reindex_job(team_id: int) -> dict[str, Any]:
    """Job: rebuild a team's index with progress (for large knowledge bases).

    In the web process the fresh index replaces the cached one; on an rq worker
    it proves the KB builds and reports its size, and web processes rebuild on
    their next version check.
    """
    from meiqia.bot.index import KBIndex
    from meiqia.jobs import report_progress

    report_progress(0.05, "reading entries")
    entries = _as_kb_entries(team_id)
    report_progress(0.2, f"building the index of {len(entries)} entries")
    started = time.perf_counter()
    index = KBIndex(entries)
    elapsed = time.perf_counter() - started
    report_progress(0.95, "swapping the index in")
    try:
        _cache()[0][team_id] = _TeamIndex(kb_version(team_id), index)
    except RuntimeError:  # no application context: an rq worker
        pass
    return {"entries": len(index), "variants": index.variant_count,
            "build_s": round(elapsed, 3)}


def start_reindex(actor: Agent) -> str:
    from flask import current_app

    require_admin(actor)
    return current_app.extensions["meiqia.jobs"].enqueue(
        reindex_job, actor.team_id, description="knowledge base reindex", owner=actor)

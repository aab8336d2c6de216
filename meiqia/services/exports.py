"""History exports: the current filter's result as CSV or XLSX, built by a job.

At most ``MAX_ROWS`` conversations: more is refused before the job starts, and
the job exports exactly the result that was counted: conversations that ended
before the request (its ``created_at``), at most ``total`` of them, so a
conversation ending or a filter field edited meanwhile cannot make the file
bigger than what was checked. Rows are read in batches by id and written as
they come (CSV streamed, xlsxwriter in constant-memory mode), so memory stays
flat however many rows. Cells a spreadsheet would run as a formula are
neutralised (``meiqia.spreadsheets``, shared by every export). A CSV cell
holds any length; an XLSX cell at most 32,767
characters, so a longer one (a long transcript) is cut and says by how much.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import secrets
import time
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from meiqia.db import database
from meiqia.jobs import Retry
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import ExportJob
from meiqia.models import Message
from meiqia.models.base import utcnow
from meiqia.private_files import make_private
from meiqia.private_files import private_folder
from meiqia.private_files import private_opener
from meiqia.services import history
from meiqia.services import messages
from meiqia.services import permissions
from meiqia.services.accounts import iso
from meiqia.services.errors import Forbidden
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.geoip import LAN_LABEL
from meiqia.services.rich_text import plain_text
from meiqia.services.validation import check
from meiqia.spreadsheets import XLSX_CELL_CHARS  # noqa: F401 - re-exported for callers
from meiqia.spreadsheets import csv_writer
from meiqia.spreadsheets import xlsx_row

log = logging.getLogger(__name__)

MAX_ROWS = 20_000
BATCH = 500
#: An export is run again after a failed attempt (a database connection cut, its
#: worker killed: docs/deploy.md, "Jobs"); each attempt writes the file from the start.
RETRY = Retry(max=2, intervals=(3, 15))
HEADERS = ["id", "visitor", "ip", "device", "started_at", "ended_at", "duration_s", "tags",
           "first_response_s", "agent", "rating", "rating_comment", "visitor_messages",
           "agent_messages", "visit_trail", "lead", "search_keyword", "summary", "region",
           "source", "platform", "grade", "channel"]
START_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "filters": history.FILTERS_BODY,
        "format": {"type": "string", "enum": ["csv", "xlsx"]},
        "with_content": {"type": "boolean"},
    },
}


def folder() -> str:
    return private_folder(os.path.join(current_app.instance_path, "exports"))


def start(actor: Agent, data: dict[str, Any]) -> ExportJob:
    check(data, START_SCHEMA)
    filters = data.get("filters") or {}
    # The export's snapshot: what ended before now; the job reads the same bound.
    now = utcnow()
    total = history.count(actor, filters, before=now)  # validates the filters too
    if total > MAX_ROWS:
        raise ValidationError(
            f"{total} conversations match: an export holds at most {MAX_ROWS:,}; narrow the "
            "time range", "filters")
    if total == 0:
        raise ValidationError("no conversation matches these filters", "filters")
    fmt = data.get("format", "csv")
    with database.atomic():
        export = ExportJob.create(team=actor.team_id, requested_by=actor.id, filters=filters,
                                  with_content=data.get("with_content", False), format=fmt,
                                  total=total, created_at=now, scope=scope_print(actor))
    try:
        job_id = current_app.extensions["meiqia.jobs"].enqueue(
            export_job, export.id, description=f"history export {export.id}", owner=actor,
            retry=RETRY)
    except Exception:
        # The queue refused it (Redis down): no export row that would never run.
        ExportJob.delete().where(ExportJob.id == export.id, ExportJob.status == "queued"
                                 ).execute()
        raise
    ExportJob.update(job_id=job_id).where(ExportJob.id == export.id).execute()
    return ExportJob.get_by_id(export.id)


#: Columns whose values are codes, shown as the UI shows them (choice → catalogue key).
CODED = {"rating": "history.rating.{}", "source": "source.{}", "platform": "platform.{}"}
#: The device kind a stored device starts with (``visit_info``: "pc", "mobile (iPhone)"),
#: shown with the workspace sidebar's labels (``device.<kind>``: 电脑, 手机 …).
DEVICE_KIND = re.compile(r"(pc|mobile|tablet|bot|other)\b")
#: Columns of a time (in the team's zone, which the header names).
TIMES = ("started_at", "ended_at", "visit_trail")


class Labels:
    """The export in the words of the agent who asked (his language setting, else the
    team's): headers, coded values, sender names. The job runs outside any request,
    so the language comes from the agent, not from a header."""

    def __init__(self, actor: Agent) -> None:
        from meiqia.web import i18n  # the catalogue of the pages (loaded at start-up)

        self._i18n = i18n
        self.lang = i18n.agent_language(actor)
        self.zone = actor.team.timezone

    def text(self, key: str, **values: Any) -> str:
        return self._i18n.text_in(self.lang, key, **values)

    def header(self, column: str) -> str:
        if column in ("id", "duration_s", "first_response_s", "messages"):
            return self.text(f"export.col.{column}", zone=self.zone)
        label = self.text(f"history.col.{column}")
        return self.text("export.col.time", label=label, zone=self.zone) \
            if column in TIMES else label

    def value(self, column: str, value: Any) -> Any:
        if column == "channel" and value:  # the channel's own name, in the reader's words
            from meiqia.channels import registry

            return registry.names(value).get(self.lang) or value
        if column in CODED and value:
            return self.text(CODED[column].format(value))
        if column == "device" and value:  # "pc / Linux / …" as the workspace says it: 电脑
            found = DEVICE_KIND.match(value)
            if found:
                return self.text(f"device.{found.group(1)}") + value[found.end():]
        if column == "region" and value == LAN_LABEL:  # stored in Chinese by the GeoIP step
            return self.text("export.region.lan")
        return value

    def sender(self, kind: str) -> str:
        return self.text(f"export.sender.{kind}")

    def visitor(self, data: dict[str, Any]) -> str:
        """His name, else "访客 12" / "Visitor 12" made now, in the reader's language."""
        return data["visitor"] or self.text("ws.visitor", id=data["visitor_id"])


def _local(value: datetime.datetime | None, tz: ZoneInfo) -> str:
    if value is None:
        return ""
    return value.replace(tzinfo=datetime.UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _trail(trail: list[Any], tz: ZoneInfo) -> str:
    """The visit trail, one page a line: local time, title, address."""
    lines = []
    for page in trail or []:
        if not isinstance(page, dict):
            continue
        try:
            when = datetime.datetime.fromisoformat(str(page.get("at") or ""))
            at = _local(when.astimezone(datetime.UTC).replace(tzinfo=None)
                        if when.tzinfo else when, tz)
        except (ValueError, OverflowError):  # a trail's time at the calendar's end
            at = ""
        lines.append(" ".join(p for p in (at, page.get("title") or "", page.get("url") or "")
                              if p))
    return "\n".join(lines)


def _let_others_run() -> None:
    """Under ``meiqia run`` (gevent) a job shares the server's one thread with every
    socket, and an export's rows are CPU work: 3,000 of them held every visitor's
    ``ack`` for 4 s (found from outside). A zero sleep between two rows is gevent's
    cooperative yield (elsewhere it only gives up the rest of a time slice)."""
    time.sleep(0)


def _rows(export: ExportJob, actor: Agent):  # noqa: ANN202 - generator of row lists
    """Rows of the export, read in batches of ``BATCH`` conversations by id: the
    conversations that ended before the export was requested, at most its total.
    The scope they are read under is recorded on the export first (``scope_print``):
    the attempt that writes the file, not the request, decides what is in it."""
    names = history.agent_names(actor.team_id)
    tz = ZoneInfo(actor.team.timezone)
    labels = Labels(actor)
    ExportJob.update(scope=scope_print(actor)).where(ExportJob.id == export.id).execute()
    base = history.query(actor, export.filters or {}, before=export.created_at)
    last = 0
    left = export.total
    while left > 0:
        batch = list(base.where(Conversation.id > last).order_by(Conversation.id)
                     .limit(min(BATCH, left)))
        if not batch:
            return
        left -= len(batch)
        transcripts: dict[int, str] = {}
        if export.with_content:
            ids = [c.id for c in batch]
            # Public text only: internal notes and events stay out of the file.
            for m in (Message.select(Message.conversation, Message.sender_kind, Message.agent,
                                     Message.body, Message.payload, Message.created_at)
                      .where(Message.conversation.in_(ids), Message.visibility == "public",
                             Message.kind == "text").order_by(Message.id)):
                who = names.get(m.agent_id) or labels.sender("agent") \
                    if m.sender_kind == "agent" else labels.sender(m.sender_kind)
                body = messages.transcript_body(m.body, m.payload)
                if m.sender_kind != "visitor":
                    # The bot's and agents' links and images, written out: no markdown.
                    body = plain_text(body, labels.lang, paths=True)
                line = f"[{_local(m.created_at, tz)}] {who}: {body}"
                transcripts[m.conversation_id] = (transcripts.get(m.conversation_id, "")
                                                  + line + "\n")
        for conversation in batch:
            data = history.row(conversation, names)
            data["tags"] = ",".join(data["tags"])
            data["visit_trail"] = _trail(data["visit_trail"], tz)
            data["started_at"] = _local(conversation.created_at, tz)
            data["ended_at"] = _local(conversation.ended_at, tz)
            data["visitor"] = labels.visitor(data)
            values = [labels.value(h, data[h]) for h in HEADERS]
            if export.with_content:
                values.append(transcripts.get(conversation.id, ""))
            _let_others_run()
            yield values
        last = batch[-1].id


def export_job(export_id: int) -> dict[str, Any]:
    """Job: write the export file with progress.

    Each attempt starts over: what an earlier attempt left (a worker killed
    mid-file) is removed first, and the count starts at 0, so a retried export
    ends with one file and one ``done`` row."""
    from meiqia.jobs import report_progress

    export = ExportJob.get_by_id(export_id)
    actor = Agent.get_by_id(export.requested_by_id)
    name = f"history-{export.id}-{secrets.token_hex(6)}.{export.format}"
    path = ""
    labels = Labels(actor)
    headers = [labels.header(h) for h in HEADERS + (["messages"] if export.with_content
                                                     else [])]
    done = 0
    try:  # from the folder on: a folder that cannot be made fails the attempt, with its reason
        _remove_leftovers(export.id)
        ExportJob.update(status="running", done=0, error="").where(
            ExportJob.id == export.id).execute()
        path = os.path.join(folder(), name)
        if export.format == "csv":
            with open(path, "w", encoding="utf-8-sig", newline="",
                      opener=private_opener) as fh:
                writer = csv_writer(fh)
                writer.writerow(headers)
                for values in _rows(export, actor):
                    writer.writerow(values)
                    done += 1
                    if done % BATCH == 0:
                        _progress(export, done, report_progress)
        else:
            import xlsxwriter

            workbook = xlsxwriter.Workbook(path, {"constant_memory": True,
                                                  "strings_to_formulas": False,
                                                  "strings_to_urls": False})
            sheet = workbook.add_worksheet(labels.text("export.sheet"))
            sheet.write_row(0, 0, headers)
            for values in _rows(export, actor):
                done += 1
                sheet.write_row(done, 0, xlsx_row(values, labels.text("export.cut")))
                if done % BATCH == 0:
                    _progress(export, done, report_progress)
            workbook.close()
            make_private(path)  # xlsxwriter wrote it with the umask (in a 0700 folder)
    except Exception as exc:
        if path and os.path.exists(path):
            os.remove(path)
        _record_failure(export.id, exc)
        raise
    ExportJob.update(status="done", done=done, file_name=name, size=os.path.getsize(path),
                     finished_at=utcnow()).where(ExportJob.id == export.id).execute()
    return {"rows": done, "file": name}


def _remove_leftovers(export_id: int) -> None:
    """Files of this export's earlier attempts (one killed mid-file leaves its part)."""
    import glob

    for path in glob.glob(os.path.join(folder(), f"history-{export_id}-*")):
        try:
            os.remove(path)
        except FileNotFoundError:  # removed meanwhile
            pass


def _record_failure(export_id: int, exc: BaseException) -> None:
    """The export's side of a failed attempt: ``failed`` with the reason when it was
    the job's last attempt, else ``queued`` again (its job's record says which).
    Never raises: the job's own failure (``jobs.execute``) is what the caller must
    see, and a database error may have broken this connection (a new one is taken,
    as ``execute`` does; if that fails too, ``follow`` brings the export in line
    with its job later)."""
    from meiqia import jobs
    from meiqia.models import JobRecord

    reason = jobs.failure_reason(exc)
    try:
        if jobs.is_database_error(exc):
            jobs.fresh_connection()
        job_id = jobs.current_job_id()
        record = JobRecord.get_or_none(JobRecord.id == job_id) if job_id else None
        final = record is None or record.attempts >= record.max_attempts
        changes = ({"status": "failed", "finished_at": utcnow()} if final
                   else {"status": "queued", "done": 0})
        ExportJob.update(error=reason, **changes).where(ExportJob.id == export_id).execute()
    except Exception as again:  # noqa: BLE001 - see above
        log.warning("export %s: could not record its failure (%s)", export_id, again)


def _progress(export: ExportJob, done: int, report: Any) -> None:
    ExportJob.update(done=done).where(ExportJob.id == export.id).execute()
    report(done / max(export.total, 1), f"{done} / {export.total}")


def follow(export: ExportJob) -> ExportJob:
    """Bring a queued or running export in line with its job record.

    A worker killed mid-export never writes "failed" on the export; ``jobs.reap``
    notices the silent job, and here the export takes its job's outcome.
    """
    from meiqia import jobs
    from meiqia.models import JobRecord

    if export.status not in {"queued", "running"} or not export.job_id:
        return export
    jobs.reap(export.job_id)
    record = JobRecord.get_or_none(JobRecord.id == export.job_id)
    if record is None or record.status not in {"failed", "queued"}:
        return export
    if record.status == "failed":
        changes = {"status": "failed", "error": record.error or "the export job failed",
                   "finished_at": record.finished_at or utcnow()}
    elif export.status == "running":  # retried after a dead worker: waiting again
        changes = {"status": "queued", "done": 0}
    else:
        return export
    ExportJob.update(**changes).where(ExportJob.id == export.id,
                                      ExportJob.status.in_(["queued", "running"])).execute()
    return ExportJob.get_by_id(export.id)


#: Why a finished export is not his to download any more (docs/security.md §12).
NARROWER = "this export was made under a wider scope than yours now: make it again"


def scope_print(actor: Agent) -> dict[str, list[int] | None]:
    """What ``actor`` sees of the team's history now: the agents whose conversations
    and the groups whose waiting ones (``permissions``), sorted id lists, None for
    all (an admin, scope ``all``)."""
    agents = permissions.visible_agent_ids(actor)
    groups = permissions.visible_group_ids(actor)
    return {"agents": None if agents is None else sorted(agents),
            "groups": None if groups is None else sorted(groups)}


def covers(actor: Agent, export: ExportJob) -> bool:
    """Whether ``actor``'s scope as it is in the database now covers what the
    export was read under: every agent and group of it he still sees (a wider
    scope keeps it; a narrower one, or one made before scopes were recorded,
    does not unless he sees everything)."""
    now = scope_print(actor)
    made = export.scope if isinstance(export.scope, dict) else {}
    for key in ("agents", "groups"):
        if now[key] is None:
            continue
        if made.get(key, None) is None or not set(made[key]) <= set(now[key]):
            return False
    return True


def visible(actor: Agent) -> Any:
    query = ExportJob.select().where(ExportJob.team == actor.team_id)
    if not actor.is_admin:
        query = query.where(ExportJob.requested_by == actor.id)
    return query


def listing(actor: Agent, limit: int = 100) -> list[ExportJob]:
    """The "history exports" page: newest first."""
    return [follow(e) for e in visible(actor).order_by(ExportJob.id.desc()).limit(limit)]


def get(actor: Agent, export_id: int) -> ExportJob:
    export = visible(actor).where(ExportJob.id == export_id).first()
    if export is None:
        raise NotFound("no such export")
    return follow(export)


def to_dict(export: ExportJob, reader: Agent | None = None) -> dict[str, Any]:
    """``reader``: who reads it; a finished file his scope no longer covers has no
    ``download`` and says why in ``refused`` (``covers``)."""
    refused = (NARROWER if reader is not None and export.status == "done"
               and not covers(reader, export) else None)
    return {"id": export.id, "status": export.status, "format": export.format,
            "with_content": export.with_content, "total": export.total, "done": export.done,
            "progress": round(export.done / export.total, 3) if export.total else 0,
            "size": export.size, "error": export.error, "filters": export.filters,
            "created_at": iso(export.created_at), "finished_at": iso(export.finished_at),
            "download": f"/api/v1/history/exports/{export.id}/file"
            if export.status == "done" and refused is None else None,
            "refused": refused}


def delete(actor: Agent, export_id: int) -> None:
    export = get(actor, export_id)
    with database.atomic():
        export.delete_instance()
    if export.file_name:
        path = os.path.join(folder(), export.file_name)
        if os.path.exists(path):
            os.remove(path)


def file_path(actor: Agent, export_id: int, lang: str = "en") -> tuple[str, str]:
    """The finished file and the name to download it by, in ``lang`` (the reader's:
    "历史记录-12.xlsx" / "history-12.xlsx")."""
    export = get(actor, export_id)
    if export.status != "done":
        raise NotFound("the export is not ready yet")
    if not covers(actor, export):  # his scope as it is in the database now (§1, §12)
        raise Forbidden(NARROWER)
    path = os.path.join(folder(), export.file_name)
    if not os.path.exists(path):
        raise NotFound("the export file is gone; export again")
    from meiqia.web import i18n

    return path, f"{i18n.text_in(lang, 'export.file', id=export.id)}.{export.format}"

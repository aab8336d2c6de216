"""Knowledge-base API: entries (admins edit, agents read), import and export."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from flask import g
from flask import request

from meiqia.services import knowledge
from meiqia.services.errors import ServiceError
from meiqia.services.errors import ValidationError
from meiqia.services.validation import PAGE
from meiqia.web.api import CSV
from meiqia.web.api import FILE
from meiqia.web.api import XLSX
from meiqia.web.api import query_int
from meiqia.web.api import route
from meiqia.web.downloads import send_download

#: An entry as ``knowledge.entry_to_dict`` gives it (``_responses.COMPONENTS``).
ENTRY_OUT = {"$ref": "#/components/schemas/KnowledgeEntry"}
LIST_QUERY = {
    "type": "object",
    "properties": {
        "q": {"type": "string"},
        "category": {"type": "string"},
        "page": PAGE,
        "per_page": {"type": "integer", "minimum": 1, "maximum": 200},
    },
}
IMPORT_FORMATS = {".yaml", ".yml", ".csv", ".xlsx"}
#: The media type of each export format (not guessed from the name: the system's
#: table may not know .yaml).
EXPORT_TYPES = {"yaml": "application/yaml", "csv": CSV, "xlsx": XLSX}
#: An import file larger than this is refused before it is read.
MAX_IMPORT_BYTES = 20 * 1024 * 1024


@route("/knowledge", summary="Knowledge-base entries (search, category, pages)",
       query=LIST_QUERY, tags=["knowledge"])
def list_entries() -> dict:
    return knowledge.list_entries(
        g.actor,
        q=request.args.get("q", "").strip()[:200],
        category=request.args.get("category", "").strip(),
        page=query_int("page", 1, 1),
        per_page=query_int("per_page", 50, 1, 200),
    )


@route("/knowledge", ("POST",), summary="Create an entry", auth="admin",
       body=knowledge.ENTRY_CREATE_SCHEMA, response=ENTRY_OUT, status=201, tags=["knowledge"])
def create_entry(body: dict) -> dict:
    return knowledge.entry_to_dict(knowledge.create_entry(g.actor, body))


@route("/knowledge/<int:entry_id>", summary="One entry", response=ENTRY_OUT, tags=["knowledge"])
def get_entry(entry_id: int) -> dict:
    return knowledge.entry_to_dict(knowledge.get_entry(g.actor, entry_id))


@route("/knowledge/<int:entry_id>", ("PATCH",), summary="Change an entry", auth="admin",
       body=knowledge.ENTRY_UPDATE_SCHEMA, response=ENTRY_OUT, tags=["knowledge"])
def update_entry(entry_id: int, body: dict) -> dict:
    return knowledge.entry_to_dict(knowledge.update_entry(g.actor, entry_id, body))


@route("/knowledge/<int:entry_id>", ("DELETE",), summary="Delete an entry", auth="admin",
       tags=["knowledge"])
def delete_entry(entry_id: int) -> dict:
    knowledge.delete_entry(g.actor, entry_id)
    return {"ok": True}


@route("/knowledge/import", ("POST",), summary="Import a KB file (multipart field `file`)",
       auth="admin", tags=["knowledge"],
       description="YAML, CSV or XLSX with columns id,question,answer. The file lands "
       "whole or not at all; errors name their line numbers. `replace=true` removes "
       "entries missing from the file.")
def import_entries() -> Any:
    from meiqia.bot.kbfile import KBFileError

    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("file: attach the KB file as multipart field 'file'", "file")
    suffix = os.path.splitext(upload.filename)[1].lower()
    if suffix not in IMPORT_FORMATS:
        raise ValidationError("file: expected a .yaml, .csv or .xlsx file", "file")
    if request.content_length and request.content_length > MAX_IMPORT_BYTES:
        raise ServiceError(f"file: larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB", "file")
    # Saved under the uploaded file's own name (in a folder of its own), so the
    # errors name the file the admin chose ("售后问答.csv: line 3: …"), not a temp name.
    name = os.path.basename(upload.filename.replace("\\", "/")).replace("\0", "")[-120:]
    with tempfile.TemporaryDirectory(prefix="kb-import-") as folder:
        path = os.path.join(folder, name or f"upload{suffix}")
        upload.save(path)
        try:
            report = knowledge.import_file(
                g.actor.team, path, actor=g.actor,
                replace=request.form.get("replace") == "true",
            )
        except KBFileError as exc:
            raise ValidationError(f"file: {exc}", "file") from exc
    return report


@route("/knowledge/export", summary="Download the KB (format=yaml|csv|xlsx)", tags=["knowledge"],
       auth="admin", content={media: FILE for media in EXPORT_TYPES.values()},
       query={"type": "object", "properties": {"format": {"type": "string",
              "enum": ["yaml", "csv", "xlsx"]}}})
def export_entries() -> Any:
    from meiqia.bot import kbfile

    fmt = request.args.get("format", "yaml")
    writers = {"yaml": kbfile.write_yaml, "csv": kbfile.write_csv, "xlsx": kbfile.write_xlsx}
    if fmt not in writers:
        raise ValidationError("format: one of yaml, csv, xlsx", "format")
    entries = knowledge.export_entries(g.actor.team_id)
    tmp = tempfile.NamedTemporaryFile(suffix="." + fmt, delete=False)
    tmp.close()
    writers[fmt](entries, tmp.name)
    response = send_download(tmp.name, f"knowledge.{fmt}", "knowledge",
                             mimetype=EXPORT_TYPES[fmt])
    response.call_on_close(lambda: os.unlink(tmp.name))
    return response


@route("/knowledge/reindex", ("POST",), summary="Rebuild the bot index as a job",
       auth="admin", status=202, tags=["knowledge"],
       description="Returns the job id; poll GET /api/v1/jobs/{job_id} for progress.")
def reindex() -> dict:
    return {"job_id": knowledge.start_reindex(g.actor)}


@route("/knowledge/calibration", summary="How the bot calibrated itself on the KB",
       auth="admin", tags=["knowledge"],
       description="The thresholds the bot set for itself on this knowledge base (raw "
       "answer score and margin, suggest score, how much a question's unknown words lower "
       "its score: oov_weight), the target precision, what it measured on "
       "held-out questions (precision, coverage, suggest precision, out-of-scope recall; "
       "null without a denominator), whether a calibration is running, and the entries "
       "that compete for the same questions, with the questions (docs/bot.md). `reason` "
       "(why the default scale is used) is in the request's language, `reason_en` the "
       "English when translated.")
def calibration() -> dict:
    from meiqia.web import error_text
    from meiqia.web import i18n

    report = knowledge.calibration_report(g.actor)
    reason = report.get("reason") or ""
    text = error_text.translate(reason, i18n.error_language())
    if text != reason:
        report["reason_en"], report["reason"] = reason, text
    return report

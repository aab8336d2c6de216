"""Progress of background jobs (reindex, exports…), the same in both modes."""

from __future__ import annotations

from flask import g

from meiqia import jobs
from meiqia.models import JobRecord
from meiqia.services.accounts import iso
from meiqia.services.errors import NotFound
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web.api import route


@route("/jobs/<job_id>", summary="A job's status, progress and result", tags=["jobs"],
       description="`name` and `message` are in the request's language, as error "
       "messages are; when translated, `name_en` / `message_en` hold the English.")
def get_job(job_id: str) -> dict:
    """A job whose worker died is retried or failed here (``jobs.reap``), so this
    never shows "started" forever."""
    job = JobRecord.get_or_none(JobRecord.id == job_id[:64])
    if job is not None and job.status == "started" and jobs.reap(job.id):
        job = JobRecord.get_by_id(job.id)
    allowed = job is not None and job.team_id == g.actor.team_id and (
        g.actor.is_admin or job.requested_by == g.actor.id)
    if not allowed:
        raise NotFound("no such job")
    found = {
        "id": job.id, "name": job.name, "status": job.status, "progress": job.progress,
        "message": job.message, "result": job.result, "error": job.error,
        "attempts": job.attempts, "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at),
    }
    # ``name`` and ``message`` are stored in English (one record, read in any
    # language): in the request's language here, as errors are (error_text), with
    # ``name_en`` / ``message_en`` the English when translated.
    lang = i18n.error_language()
    for key in ("name", "message"):
        text = found[key] or ""
        said = error_text.translate(text, lang)
        if said != text:
            found[f"{key}_en"], found[key] = text, said
    return found

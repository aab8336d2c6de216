"""History exports API (导出): start an export of the current filter, follow its
progress, download and delete. Only the requester and admins see an export;
for anyone else it does not exist (404)."""

from __future__ import annotations

from flask import g

from meiqia.services import exports
from meiqia.web.api import CSV
from meiqia.web.api import FILE
from meiqia.web.api import XLSX
from meiqia.web.api import route
from meiqia.web.downloads import send_download


@route("/history/exports", ("POST",), summary="Export the filter's result (job)",
       body=exports.START_SCHEMA, status=202, tags=["exports"],
       description="Refused (422) before the job starts when more than 20,000 "
                   "conversations match, when none does, and when `filters` holds a name "
                   "that is no filter (a misspelt one: the 422 lists the accepted names).")
def start_export(body: dict) -> dict:
    return _shown(exports.to_dict(exports.start(g.actor, body), g.actor))


@route("/history/exports", summary="My exports (admins: the team's), newest first",
       tags=["exports"])
def list_exports() -> list:
    return [_shown(exports.to_dict(e, g.actor)) for e in exports.listing(g.actor)]


@route("/history/exports/<int:export_id>", summary="One export and its progress",
       tags=["exports"])
def get_export(export_id: int) -> dict:
    return _shown(exports.to_dict(exports.get(g.actor, export_id), g.actor))


def _shown(export: dict) -> dict:
    """A failed export's reason in the reader's language (stored in English, as the
    job recorded it; the English original stays in ``error_en``)."""
    from meiqia.web import error_text
    from meiqia.web import i18n

    if export.get("error"):
        text = error_text.translate_stored(export["error"], i18n.error_language())
        if text != export["error"]:
            export["error_en"], export["error"] = export["error"], text
    if export.get("refused"):  # in the reader's language, as a refused download says it
        export["refused"] = error_text.translate(export["refused"], i18n.error_language())
    return export


@route("/history/exports/<int:export_id>/file", summary="Download a finished export",
       tags=["exports"], content={CSV: FILE, XLSX: FILE},
       description="The file is named in the reader's language, as error messages are "
                   "(`历史记录-12.xlsx`, `history-12.xlsx`): `filename*` holds it, the plain "
                   "`filename=` the English one (`history-12.xlsx`). Refused (403) once the "
                   "reader's scope, as it is in the database now, no longer covers the one "
                   "the file was made under (an admin narrowed it): the export says so in "
                   "`refused` and has no `download`; making it again gives his scope's rows.")
def download_export(export_id: int):  # noqa: ANN201 - a Flask response
    from meiqia.web import i18n

    path, name = exports.file_path(g.actor, export_id, i18n.error_language())
    # curl -OJ and other readers of the plain filename= get the English name
    return send_download(path, name, i18n.text_in("en", "export.file", id=export_id),
                         max_age=0)


@route("/history/exports/<int:export_id>", ("DELETE",), summary="Delete an export and its file",
       tags=["exports"])
def delete_export(export_id: int) -> dict:
    exports.delete(g.actor, export_id)
    return {"ok": True}

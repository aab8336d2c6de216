"""Download names: the plain ``filename=`` of Content-Disposition is a sensible
ASCII name, ``filename*`` the real one (outside check hapi, defect 4).

Werkzeug's fallback dropped every character outside ASCII: a zh-CN export
downloaded as ``-13.xlsx`` and a visitor's ``身份证.txt`` as ``.txt``, a hidden
file, with ``curl -OJ`` (which reads ``filename=``). One helper names every
download (``web.downloads``).
"""

from __future__ import annotations

import datetime
import subprocess
from urllib.parse import quote
from urllib.parse import unquote

import pytest
from werkzeug.http import parse_options_header

from tests.api.test_uploads import CONTENT_TYPE
from tests.api.test_uploads import multipart
from tests.factories import make_conversation
from tests.factories import make_visitor


def names(response) -> tuple[str, dict[str, str]]:
    """The disposition and its options as written (``parse_options_header`` would
    put ``filename*`` in place of ``filename``), ``filename*`` decoded."""
    kind, _, rest = response.headers["Content-Disposition"].partition("; ")
    options = dict(part.split("=", 1) for part in rest.split("; ") if part)
    if "filename*" in options:
        assert options["filename*"].startswith("UTF-8''")
        options["filename*"] = unquote(options["filename*"][len("UTF-8''"):])
    return kind, options


def upload_chinese_file(api) -> str:
    """An agent uploads ``身份证.txt`` (``110101``) into an open conversation: its URL."""
    team = api.team["id"]
    conversation = make_conversation(team, make_visitor(team, name="张三"),
                                     handler=api.agent["id"], status="open")
    up = api.post(f"/api/v1/conversations/{conversation.id}/uploads",
                  data=multipart(("kind", None, b"file"), ("file", "身份证.txt", b"110101")),
                  content_type=CONTENT_TYPE)
    assert up.status_code == 201, up.get_json()
    return up.get_json()["url"]


def end_a_conversation(api) -> None:
    """An ended conversation, for an export to hold."""
    team = api.team["id"]
    make_conversation(team, make_visitor(team, name="李四"), handler=api.agent["id"],
                      ended_at=datetime.datetime(2026, 11, 20, 4, 0),
                      messages=[("visitor", "发票怎么开？", 0)])


@pytest.mark.parametrize(("real", "fallback", "plain"), [
    ("身份证.txt", "attachment", "attachment.txt"),
    ("历史记录-13.xlsx", "history-13", "history-13.xlsx"),
    ("报告（终稿）.pdf", "attachment", "attachment.pdf"),
    ("café menu.pdf", "attachment", "cafe menu.pdf"),
    (".bashrc", "attachment", "bashrc"),
    ("-rf.sh", "attachment", "rf.sh"),
    ("...", "attachment", "attachment"),
    ("发票", "attachment", "attachment"),
    ('a"b\\c;d.txt', "attachment", "a_b_c_d.txt"),
    ("😀😀.png", "attachment", "attachment.png"),
    ("报告.身份证", "attachment", "attachment"),
    ("knowledge.yaml", "knowledge", "knowledge.yaml"),
])
def test_the_ascii_name_is_never_empty_hidden_or_an_option(real, fallback, plain):
    from meiqia.web.downloads import ascii_name

    assert ascii_name(real, fallback) == plain


def test_a_visitors_chinese_file_downloads_under_a_usable_name(api, tmp_path):
    got = api.get(upload_chinese_file(api))
    got.get_data()
    got.close()
    kind, options = names(got)
    assert kind == "attachment"
    assert options["filename"] == "attachment.txt", got.headers["Content-Disposition"]
    assert options["filename*"] == "身份证.txt"
    # what a browser makes of it: the real name
    assert parse_options_header(got.headers["Content-Disposition"])[1]["filename"] == "身份证.txt"
    assert f"filename*=UTF-8''{quote('身份证.txt')}" in got.headers["Content-Disposition"]


def test_exports_and_the_knowledge_base_download_under_usable_names(api):
    end_a_conversation(api)
    started = api.post("/api/v1/history/exports", json={"format": "xlsx"})
    assert started.status_code == 202, started.get_json()
    export_id = started.get_json()["id"]
    for lang, real in (("zh-CN", f"历史记录-{export_id}.xlsx"), ("en", f"history-{export_id}.xlsx")):
        got = api.get(f"/api/v1/history/exports/{export_id}/file",
                      headers={"Accept-Language": lang})
        got.get_data()
        got.close()
        kind, options = names(got)
        assert kind == "attachment"
        assert options["filename"] == f"history-{export_id}.xlsx", got.headers
        assert options.get("filename*", options["filename"]) == real
    kb = api.get("/api/v1/knowledge/export?format=yaml")
    kb.get_data()
    kb.close()
    assert kb.headers["Content-Disposition"] == "attachment; filename=knowledge.yaml"


def test_curl_saves_the_files_under_usable_names(api, tmp_path):
    """``curl -OJ`` (which reads ``filename=`` only) against the app on a real socket."""
    import threading

    from werkzeug.serving import make_server

    saved = tmp_path / "saved"
    saved.mkdir()
    upload_url = upload_chinese_file(api)
    end_a_conversation(api)
    export_id = api.post("/api/v1/history/exports", json={"format": "csv"}).get_json()["id"]
    token = api.post("/api/v1/tokens", json={"name": "下载", "scope": "read"}).get_json()["token"]
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for path in (upload_url, f"/api/v1/history/exports/{export_id}/file"):
            subprocess.run(["curl", "-s", "-f", "-OJ", "-H", f"Authorization: Bearer {token}",
                            "-H", "Accept-Language: zh-CN", base + path],
                           cwd=saved, check=True, timeout=60)
    finally:
        server.shutdown()
        thread.join(10)
    assert sorted(p.name for p in saved.iterdir()) == [
        "attachment.txt", f"history-{export_id}.csv"]
    assert (saved / "attachment.txt").read_bytes() == b"110101"

"""Issue 15 §7 in a real browser: a hostile site cannot frame our pages.

A page on another origin (a second little server on another port of this
machine: another origin for the browser) frames the login page, the workspace and
the widget frame. Chromium shows none of ours but the widget, and the widget only
while the team allows any site or names that one.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def hostile_site(server: Any, paths: list[str]) -> Iterator[str]:
    """An origin of its own whose page frames ``paths`` of ``server``."""
    body = "".join(f'<iframe name="f{i}" src="{server.url}{p}"></iframe>'
                   for i, p in enumerate(paths)).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_port}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(timeout=5)


def framed(context: Any, server: Any, paths: list[str],
           allow: list[str] | None = None) -> dict[str, bool]:
    """Which of ``paths`` the hostile page shows (``allow``: the team's sites
    then, the hostile one named ``SITE``)."""
    with hostile_site(server, paths) as site:
        if allow is not None:
            sites = [site if s == "SITE" else s for s in allow]
            answer = server.api().patch("/api/v1/team", json={"settings": {"widget": {
                "allowed_origins": sites}}})
            assert answer.status_code == 200, answer.get_json()
        page = context.new_page()
        page.goto(site + "/")
        page.wait_for_load_state("load")
        shown = {}
        for index, path in enumerate(paths):
            frame = page.frame(name=f"f{index}")
            # A refused frame is Chromium's error page, not our origin.
            shown[path] = bool(frame) and frame.url.startswith(server.url) and \
                frame.evaluate("document.body !== null && document.body.innerHTML.length > 0")
        page.close()
    return shown


def test_a_hostile_site_cannot_frame_our_pages(server, admin, new_context):
    context = new_context()
    widget = f"/widget/frame?team={admin.team['id']}"
    shown = framed(context, server, ["/login", "/workspace", "/tickets", widget])
    assert shown == {"/login": False, "/workspace": False, "/tickets": False, widget: True}
    assert framed(context, server, [widget], allow=["https://shop.example.com"]) == \
        {widget: False}
    assert framed(context, server, [widget], allow=["https://shop.example.com", "SITE"]) == \
        {widget: True}

"""Customers' data on disk is the service user's alone (docs/security.md §12).

An outside check found the exports (whole transcripts, phone numbers) written
0644 in a 0755 folder: every local account could read them. Here, with the usual
umask (022), an upload, a CSV and an XLSX export and the instance folder are
checked by their modes; a folder made wide before (an older install) is narrowed
at its next use.
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.api.test_exports import seed
from tests.api.test_uploads import PNG
from tests.api.test_uploads import World
from tests.api.test_uploads import multipart


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_uploads_exports_and_the_instance_are_the_service_users_alone(usual_umask, api):
    app = api.app
    exports_folder = os.path.join(app.instance_path, "exports")
    os.chmod(exports_folder, 0o755)  # as an older install made it
    world = World(api)
    up = world.visitor_upload(multipart(("kind", None, b"image"), ("file", "身份证.png", PNG)))
    assert up.status_code == 201, up.get_json()
    uploads_folder = os.path.join(app.instance_path, "uploads")
    assert mode(uploads_folder) == 0o700
    assert mode(os.path.join(uploads_folder, up.get_json()["key"])) == 0o600

    seed(api)
    for fmt in ("csv", "xlsx"):
        started = api.post("/api/v1/history/exports", json={"format": fmt, "with_content": True})
        assert started.status_code == 202, started.get_json()
        export = api.get(f"/api/v1/history/exports/{started.get_json()['id']}").get_json()
        assert export["status"] == "done", export
    names = os.listdir(exports_folder)
    assert len(names) == 2 and {name.rsplit(".", 1)[1] for name in names} == {"csv", "xlsx"}
    assert mode(exports_folder) == 0o700
    assert all(mode(os.path.join(exports_folder, name)) == 0o600 for name in names)


def test_an_instance_folder_made_wide_before_is_narrowed_at_start(usual_umask, tmp_path):
    from tests.conftest import close_app
    from tests.conftest import make_app

    instance = tmp_path / "instance"  # where make_app puts it
    instance.mkdir(mode=0o755)
    os.chmod(instance, 0o755)
    (instance / "exports").mkdir(mode=0o755)
    os.chmod(instance / "exports", 0o755)
    app = make_app(tmp_path)
    try:
        assert mode(str(instance)) == 0o700
        # uploads/ and exports/ are there from the start, before any upload or export
        # (docs/deploy.md §6 archives uploads/ of an instance nobody uploaded to yet).
        assert mode(str(instance / "uploads")) == 0o700
        assert mode(str(instance / "exports")) == 0o700
    finally:
        close_app(app)

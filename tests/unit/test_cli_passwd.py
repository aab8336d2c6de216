"""``meiqia agent passwd``: the console's way back in (issue 17, item 3)."""

from __future__ import annotations

from tests.unit.test_cli import in_process


def _login(tmp_path, email, password):
    """Whether ``password`` logs ``email`` in on the instance of ``tmp_path``."""
    import os

    from meiqia import create_app
    from meiqia.db import connection
    from meiqia.services import accounts
    from meiqia.services.errors import Unauthorized

    old = os.environ.get("MEIQIA_INSTANCE_PATH")
    os.environ["MEIQIA_INSTANCE_PATH"] = str(tmp_path / "inst")
    try:
        app = create_app()
    finally:
        if old is None:
            os.environ.pop("MEIQIA_INSTANCE_PATH")
        else:
            os.environ["MEIQIA_INSTANCE_PATH"] = old
    with app.app_context(), connection():
        try:
            accounts.authenticate(email, password, "127.0.0.9")
        except Unauthorized:
            return False
        from meiqia.models import AuditLog

        row = AuditLog.select().where(AuditLog.action == "agent.password_reset").first()
        assert row is not None and row.team_id == 1 and row.actor_id is None
        assert row.details["via"] == "console"
        return True


def test_passwd_prompts_twice_and_sets_the_password(tmp_path):
    in_process(tmp_path, "init", "--no-demo-kb", "--password", "first-pass-1")
    # Two different entries: refused, asked again; then two equal ones.
    out = in_process(tmp_path, "agent", "passwd", "ADMIN@example.com",
                     input="new-pass-22\nother-pass-3\nnew-pass-22\nnew-pass-22\n")
    assert "do not match" in out.output.lower()
    assert "password of admin@example.com (agent 1) changed" in out.output
    assert "new-pass-22" not in out.output  # hidden input is never echoed
    assert _login(tmp_path, "admin@example.com", "new-pass-22")
    assert not _login(tmp_path, "admin@example.com", "first-pass-1")


def test_passwd_option_rules_and_unknown_email(tmp_path):
    in_process(tmp_path, "init", "--no-demo-kb", "--password", "first-pass-1")
    weak = in_process(tmp_path, "agent", "passwd", "admin@example.com", "--password", "short",
                      check=False)
    assert weak.returncode == 1 and "at least 8 characters" in weak.output
    unknown = in_process(tmp_path, "agent", "passwd", "nobody@example.com",
                         "--password", "good-pass-1", check=False)
    assert unknown.returncode == 1 and "no agent with the email nobody@example.com" in unknown.output
    ok = in_process(tmp_path, "agent", "passwd", "admin@example.com", "--password", "good-pass-1")
    assert "0 session(s) signed out" in ok.output
    assert _login(tmp_path, "admin@example.com", "good-pass-1")

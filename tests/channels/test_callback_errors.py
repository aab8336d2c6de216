"""A channel's callback URL (``/channels/<type>/...``) is called by a program:
a refusal there is JSON in the caller's language (English unless it names one),
as under ``/api/``, not the HTML error page in the instance's language."""

from __future__ import annotations

from flask import Blueprint

from meiqia.hookspecs import hookimpl
from meiqia.services.errors import ValidationError
from tests.conftest import close_app
from tests.conftest import make_app


class _Probe:
    __name__ = "probe_channel"

    @hookimpl
    def register_blueprints(self, app):
        bp = Blueprint("probe_channel", __name__, url_prefix="/channels/probe")

        @bp.post("/<int:team_id>/inbound")
        def inbound(team_id: int):
            raise ValidationError("text: must not be empty", "body")

        return [bp]


def test_a_refusal_in_a_channel_callback_is_json(tmp_path):
    app = make_app(tmp_path, plugins=(_Probe(),))
    try:
        client = app.test_client()
        answer = client.post("/channels/probe/1/inbound", json={"from": "+8613800138000"})
        assert answer.status_code == 422 and answer.is_json, answer.data[:200]
        assert answer.get_json()["error"] == {"code": "invalid", "field": "body",
                                              "message": "text: must not be empty"}
        chinese = client.post("/channels/probe/1/inbound", json={},
                              headers={"Accept-Language": "zh-CN"}).get_json()
        assert chinese["error"]["message_en"] == "text: must not be empty"
        assert chinese["error"]["message"] != chinese["error"]["message_en"]
        # Pages keep their HTML error page.
        assert not client.get("/history").is_json
    finally:
        close_app(app)

"""What a channel's ``receive`` gets when a privacy hook could not check the message
and ``PRIVACY_FALLBACK`` is ``"refuse"`` (docs/plugins.md, "Inbound: receive").

Found by a plugin author working from the docs alone: they named only
``ValidationError``, but ``receive`` then raises ``unavailable`` (a 503 with
``Retry-After: 2`` through a channel's own inbound route), nothing is stored, and a
channel that reads its messages itself (a mailbox) must try again later.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import jsonify
from flask import request

from meiqia.channels import receive
from meiqia.channels import registry
from meiqia.hookspecs import hookimpl
from meiqia.models import Message
from meiqia.services.errors import ServiceError
from tests.channels import standin
from tests.channels.conftest import enable
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient


class Redactor:
    """A redactor that raises while ``broken``."""

    __name__ = "flaky_redactor"

    def __init__(self) -> None:
        self.broken = True

    @hookimpl
    def before_message_saved(self, message: dict, conversation: Any) -> None:
        if self.broken:
            raise RuntimeError("规则文件读不到")
        return None


class Inbound:
    """The stand-in channel's callback URL, as a channel's blueprint would be."""

    __name__ = "standin_inbound"

    @hookimpl
    def register_blueprints(self, app: Any) -> Blueprint:
        blueprint = Blueprint("standin_inbound", __name__, url_prefix="/channels/standin")

        @blueprint.post("/<int:team_id>")
        def inbound(team_id: int) -> Any:
            data = request.get_json()
            host = registry.make_host(team_id, "standin", app=app)
            result = receive(host, data["from"], data["text"],
                             external_message_id=data["id"])
            return jsonify({"conversation_id": result.conversation_id})

        return blueprint


def test_receive_is_refused_with_unavailable_and_the_same_message_is_stored_later(tmp_path):
    redactor = Redactor()
    app = make_app(tmp_path, plugins=(standin, redactor, Inbound()),
                   PRIVACY_FALLBACK="refuse", PLUGIN_BREAKER_FAILURES=100)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.without_bot()
            team_id = api.team["id"]
            enable(app, team_id)
            host = registry.make_host(team_id, "standin", app=app)
            # A channel that reads its messages itself gets the exception.
            try:
                receive(host, "dora@example.com", "我的电话13800138000", external_message_id="m1")
            except ServiceError as exc:
                refused = exc
            else:
                raise AssertionError("receive stored a message no redactor could check")
            assert refused.status == 503 and refused.code == "unavailable"
            assert "could not check it" in refused.message
            # Over a channel's own inbound route: 503, Retry-After, the usual JSON.
            web = app.test_client().post(f"/channels/standin/{team_id}", json={
                "from": "erin@example.com", "text": "在吗 13900139000", "id": "w1"})
            assert web.status_code == 503
            assert web.headers["Retry-After"] == "2"
            assert web.get_json()["error"]["code"] == "unavailable"
            assert Message.select().where(Message.sender_kind == "visitor").count() == 0
            # Tried again later, once the redactor works: stored once.
            redactor.broken = False
            first = receive(host, "dora@example.com", "我的电话13800138000",
                            external_message_id="m1")
            again = receive(host, "dora@example.com", "我的电话13800138000",
                            external_message_id="m1")
            assert not first.duplicate and again.duplicate
            assert Message.select().where(Message.sender_kind == "visitor").count() == 1
    finally:
        close_app(app)

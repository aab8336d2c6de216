"""A ticket sink's optional ``validate_config(config)``, written either way.

docs/plugins.md's sink has methods that take ``self``; a plugin author wrote
``def validate_config(self, config)`` the same way and ``POST /api/v1/ticket-sinks``
answered 500 ("missing 1 required positional argument"): it was called on the
class. An instance method is now called on an instance (as deliveries are), a
staticmethod or classmethod on the class, and whatever else it raises is a 422
naming it, not a 500.
"""

from __future__ import annotations

import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import TicketSink
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient


class _Base:
    name = "CRM"

    @staticmethod
    def configuration_schema():
        return {"type": "object", "required": ["url"],
                "properties": {"url": {"type": "string", "title": "URL"}}}

    def create_ticket(self, ticket, config):
        pass

    def update_ticket(self, ticket, config, changes):
        pass


class InstanceSink(_Base):
    type = "crm_instance"

    def __init__(self):
        self.prefix = "https://"

    def validate_config(self, config):
        if not config["url"].startswith(self.prefix):
            raise ValueError("url must start with https://")


class StaticSink(_Base):
    type = "crm_static"

    @staticmethod
    def validate_config(config):
        if not config["url"].startswith("https://"):
            raise ValueError("url must start with https://")


class ClassSink(_Base):
    type = "crm_class"

    @classmethod
    def validate_config(cls, config):
        if not config["url"].startswith("https://"):
            raise ValueError(f"{cls.type}: url must start with https://")


class BuggySink(_Base):
    type = "crm_buggy"

    def validate_config(self, config):
        return config["no such key"]


@pytest.fixture
def admin(tmp_path):
    plugin = types.ModuleType("crm_sinks")
    plugin.register_ticket_sinks = hookimpl(
        lambda app: [InstanceSink, StaticSink, ClassSink, BuggySink])
    app = make_app(tmp_path, plugins=(plugin,))
    with app.app_context():
        yield ApiClient.registered(app)
    close_app(app)


@pytest.mark.parametrize("sink_type", ["crm_instance", "crm_static", "crm_class"])
def test_validate_config_as_a_method_a_staticmethod_or_a_classmethod(admin, sink_type):
    refused = admin.post("/api/v1/ticket-sinks", json={
        "type": sink_type, "name": "CRM", "config": {"url": "ftp://crm.example.com"}})
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["field"] == "config" and "url must start with https://" in error["message"]
    created = admin.post("/api/v1/ticket-sinks", json={
        "type": sink_type, "name": "CRM", "config": {"url": "https://crm.example.com"}})
    assert created.status_code == 201, created.get_json()
    assert TicketSink.select().where(TicketSink.type == sink_type).count() == 1
    # A change is checked the same way.
    sink_id = created.get_json()["id"]
    changed = admin.patch(f"/api/v1/ticket-sinks/{sink_id}",
                          json={"config": {"url": "ftp://crm.example.com"}})
    assert changed.status_code == 422, changed.get_json()


def test_a_validate_config_that_raises_something_else_is_a_422(admin):
    response = admin.post("/api/v1/ticket-sinks", json={
        "type": "crm_buggy", "name": "CRM", "config": {"url": "https://crm.example.com"}})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == "config"
    assert error["message"] == ("config: the plugin's validate_config raised "
                                "KeyError: 'no such key'")
    assert TicketSink.select().count() == 0
    zh = admin.post("/api/v1/ticket-sinks", headers={"X-Meiqia-Lang": "zh-CN"}, json={
        "type": "crm_buggy", "name": "CRM", "config": {"url": "https://crm.example.com"}})
    assert zh.get_json()["error"]["message"] == \
        "配置：插件的配置检查（validate_config）出错：KeyError: 'no such key'"

"""The Channels admin API: forms from configuration_schema(), secrets write-only,
validation, enabling per team, test connection."""

from __future__ import annotations

import json

from meiqia.models import AuditLog
from meiqia.models import ChannelConfig
from tests.channels import standin


def test_secrets_are_never_returned_and_a_masked_secret_keeps_its_value(ch_app, ch_api):
    listed = ch_api.get("/api/v1/channels").get_json()
    (mine,) = [c for c in listed if c["type"] == "standin"]
    assert mine["enabled"] and mine["secret"] == ["api_key"]
    assert mine["schema"]["properties"]["endpoint"]["title"] == "Endpoint"
    assert mine["capabilities"] == ["attachments"]
    assert mine["fields"] == ["endpoint", "api_key", "mode"]  # the schema's order
    assert mine["config"]["api_key"] == "********"
    assert mine["names"] == {"zh-CN": "测试渠道", "en": "Stand-in"}
    # Not in any answer, audit entry or list: the secret itself.
    for url in ("/api/v1/channels", "/api/v1/channels/standin"):
        assert "s3cret-key" not in ch_api.get(url).get_data(as_text=True)
    # The mask keeps the stored secret while the endpoint it is sent to stays.
    moved = ch_api.put("/api/v1/channels/standin",
                       json={"config": {"endpoint": "https://example.org/x",
                                        "api_key": "********"}})
    assert moved.status_code == 422 and moved.get_json()["error"]["field"] == "config.api_key"
    saved = ch_api.put("/api/v1/channels/standin",
                       json={"config": {"endpoint": "https://example.com/hook",
                                        "api_key": "********", "mode": "slow"}})
    assert saved.status_code == 200, saved.get_json()
    assert "s3cret-key" not in saved.get_data(as_text=True)
    row = ChannelConfig.get(ChannelConfig.channel == "standin")
    assert row.config["api_key"] == "s3cret-key" and row.config["mode"] == "slow"
    saved = ch_api.put("/api/v1/channels/standin",
                       json={"config": {"endpoint": "https://example.org/x",
                                        "api_key": "s3cret-key"}})
    assert saved.status_code == 200, saved.get_json()
    row = ChannelConfig.get(ChannelConfig.channel == "standin")
    assert row.config["endpoint"].endswith("/x")
    assert row.config["mode"] == "fast"  # the schema's default
    changed = ch_api.put("/api/v1/channels/standin",
                         json={"config": {"endpoint": "https://example.org/x",
                                          "api_key": "new-secret-2"}})
    assert changed.status_code == 200 and "new-secret-2" not in changed.get_data(as_text=True)
    assert ChannelConfig.get_by_id(row.id).config["api_key"] == "new-secret-2"
    audit = json.dumps([a.details for a in AuditLog.select()], ensure_ascii=False)
    assert "new-secret-2" not in audit and "s3cret-key" not in audit
    assert "api_key" in audit  # that it changed is recorded, not its value


def test_bad_settings_are_refused_with_the_field_named(ch_app, ch_api):
    cases = [
        ({"endpoint": "https://example.org"}, "config.api_key"),  # required
        ({"endpoint": "ftp://example.org", "api_key": "abcd"}, "config.endpoint"),
        ({"endpoint": "https://example.org", "api_key": "abcd", "mode": "turbo"},
         "config.mode"),
        ({"endpoint": "https://example.org", "api_key": "ab"}, "config.api_key"),
    ]
    before = ChannelConfig.get(ChannelConfig.channel == "standin").config
    for config, field in cases:
        refused = ch_api.put("/api/v1/channels/standin", json={"config": config},
                             headers={"X-Meiqia-Lang": "zh-CN"})
        assert refused.status_code == 422, (config, refused.get_json())
        assert refused.get_json()["error"]["field"] == field
    assert ChannelConfig.get(ChannelConfig.channel == "standin").config == before
    assert ch_api.put("/api/v1/channels/nope", json={"enabled": True}).status_code == 404
    assert ch_api.put("/api/v1/channels/web", json={"enabled": True}).status_code == 404


def test_a_uri_setting_takes_the_one_url_check(ch_app, ch_api):
    """A ``format: uri`` setting (the stand-in's endpoint, WeChat's api_base_url, the
    example webhook channel's outbound_url) was checked by its first characters
    only: ``http://[::1`` and port 99999 were saved. Now the URL check of iframe
    panels and ticket sinks (services/validation.http_url) refuses them."""
    before = ChannelConfig.get(ChannelConfig.channel == "standin").config
    wechat = {"app_id": "wx1234", "app_secret": "app-secret-1", "token": "tok123",
              "encryption_mode": "plain"}
    for url, message in (("http://[::1", "主机名或 IP 地址无效"),
                         ("http://a.cn:99999/", "端口必须是 1 到 65535 之间的数字"),
                         ("http://%zz/", "主机名或 IP 地址无效")):
        refused = ch_api.put("/api/v1/channels/standin?lang=zh-CN",
                             json={"config": {"endpoint": url, "api_key": "abcd"}})
        assert refused.status_code == 422, (url, refused.get_json())
        assert refused.get_json()["error"]["field"] == "config.endpoint"
        assert refused.get_json()["error"]["message"].endswith(message)
        refused = ch_api.put("/api/v1/channels/wechat?lang=zh-CN",
                             json={"config": {**wechat, "api_base_url": url}})
        assert refused.status_code == 422, (url, refused.get_json())
        assert refused.get_json()["error"] == {
            "code": "invalid", "field": "config.api_base_url",
            "message": f"接口地址：{message}",
            "message_en": refused.get_json()["error"]["message_en"]}
    assert ChannelConfig.get(ChannelConfig.channel == "standin").config == before
    assert not ChannelConfig.select().where(ChannelConfig.channel == "wechat").exists()


def test_a_masked_secret_without_a_stored_one_is_refused(ch_app):
    from tests.helpers import ApiClient

    api = ApiClient.registered(ch_app)
    refused = api.put("/api/v1/channels/standin", json={
        "enabled": True, "config": {"endpoint": "https://e.org", "api_key": "********"}})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "config.api_key"


def test_enabled_per_team_and_only_admins_configure(ch_app, ch_api):
    from tests.helpers import ApiClient

    agent = ch_api.new_agent()
    assert agent.get("/api/v1/channels").status_code == 403
    assert agent.put("/api/v1/channels/standin", json={"enabled": False}).status_code == 403
    ch_app.config["OPEN_REGISTRATION"] = True
    other = ApiClient(ch_app)
    made = other.client.post("/api/v1/auth/register", json={
        "team_name": "别的团队", "name": "周管理", "email": "zhou@example.com",
        "password": "another-pass-123"})
    assert made.status_code == 201, made.get_json()
    other._take(made.get_json())
    theirs = [c for c in other.get("/api/v1/channels").get_json() if c["type"] == "standin"]
    assert theirs[0]["enabled"] is False and theirs[0]["config"] == {}


def test_test_connection_reports_success_and_failure(ch_app, ch_api):
    ok = ch_api.post("/api/v1/channels/standin/test", json={})
    assert ok.get_json() == {"ok": True, "message": "connected to https://example.com/hook"}
    down = ch_api.post("/api/v1/channels/standin/test", json={"config": {
        "endpoint": "https://example.com/down", "api_key": "s3cret-key"}})
    assert down.get_json() == {"ok": False, "message": "the endpoint answered 503"}
    # The stored secret (sent back masked) is not tested against another endpoint.
    moved = ch_api.post("/api/v1/channels/standin/test", json={"config": {
        "endpoint": "https://example.com/down", "api_key": "********"}})
    assert moved.status_code == 422 and moved.get_json()["error"]["field"] == "config.api_key"
    # Testing unsaved settings saves nothing.
    assert ChannelConfig.get(ChannelConfig.channel == "standin").config["endpoint"] == \
        "https://example.com/hook"


def test_saving_restarts_the_channel(ch_app, ch_api):
    from meiqia.channels import registry

    first = registry.instance(ch_api.team["id"], "standin", start=True)
    box = ch_app.extensions["standin"]
    started = box["started"]
    ch_api.put("/api/v1/channels/standin", json={"config": {
        "endpoint": "https://example.net/", "api_key": "s3cret-key"}})
    second = registry.instance(ch_api.team["id"], "standin")
    assert second is not first and second.config["endpoint"] == "https://example.net/"
    assert box["stopped"] >= 1 and box["started"] == started + 1
    ch_api.put("/api/v1/channels/standin", json={"enabled": False})
    assert registry.instance(ch_api.team["id"], "standin") is None
    assert registry.host_for(ch_api.team["id"], "standin") is None
    assert registry.host_for("not-a-team", "standin") is None


def test_host_state_is_shared_and_kept(ch_app, ch_api):
    from meiqia.channels import registry

    host = registry.host_for(ch_api.team["id"], "standin")
    assert host is not None and "s3cret" not in repr(host)
    host.state.set("token", {"value": "abc", "expires": 7200})
    host.state.set("token", {"value": "def", "expires": 7200})
    again = registry.make_host(ch_api.team["id"], "standin")
    assert again.state.get("token") == {"value": "def", "expires": 7200}
    assert again.state.get("missing", 5) == 5


def test_the_channel_shows_in_lists_history_and_dashboard(ch_app, ch_api):
    from meiqia.channels import receive
    from meiqia.channels import registry

    agent = ch_api.online_agent()
    host = registry.make_host(ch_api.team["id"], "standin")
    cid = receive(host, "ivy@example.com", "人工").conversation_id
    mine = agent.get("/api/v1/conversations").get_json()["mine"]
    assert mine[0]["id"] == cid and mine[0]["channel"] == "standin"
    assert mine[0]["channel_name"] == {"zh-CN": "测试渠道", "en": "Stand-in"}
    assert agent.post(f"/api/v1/conversations/{cid}/end").status_code == 200
    rows = ch_api.get("/api/v1/history?channel=standin").get_json()["items"]
    assert [r["id"] for r in rows] == [cid] and rows[0]["channel"] == "standin"
    assert ch_api.get("/api/v1/history?channel=web").get_json()["items"] == []
    bad = ch_api.get("/api/v1/history?channel=fax")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "channel"
    home = ch_api.get("/api/v1/dashboard").get_json()
    (row,) = home["today"]["by_channel"]
    assert row["channel"] == "standin" and row["ended"] == 1
    export = ch_api.post("/api/v1/history/exports", json={"filters": {"channel": "standin"}})
    assert export.status_code in (200, 201, 202), export.get_json()
    import os

    from meiqia.models import ExportJob
    from meiqia.services import exports

    job = ExportJob.get()
    assert job.status == "done", job.error
    with open(os.path.join(exports.folder(), job.file_name), encoding="utf-8-sig") as handle:
        header, first = handle.read().splitlines()[:2]
    # In the words of the agent who asked (zh-CN): the column's and the channel's names.
    assert header.split(",")[-1] == "渠道" and first.split(",")[-1] == "测试渠道"
    assert standin  # the plugin under test


def test_an_instance_a_job_built_first_is_still_started_with_the_process(ch_app, ch_api):
    """After a restart a resumed delivery job may build the channel's instance
    (unstarted: jobs send, they do not read mailboxes) before the first request
    starts the channels. That instance must be started then: it was skipped as
    "already there", and the mailbox stayed unread until the settings were saved."""
    from meiqia.channels import registry
    from tests.channels import standin

    registry.stop_all(ch_app)
    box = standin._box(ch_app)
    before = box["started"]
    built = registry.instance(ch_api.team["id"], "standin", ch_app)  # as a job does
    assert built is not None and box["started"] == before
    assert registry.start_all(ch_app) == 1
    assert box["started"] == before + 1
    assert registry.instance(ch_api.team["id"], "standin", ch_app) is built
    assert registry.start_all(ch_app) == 0 and box["started"] == before + 1


def test_sync_follows_settings_saved_by_another_process(ch_app, ch_api):
    """What ``sync`` (each process's watcher) does with rows another process wrote:
    a channel switched off stops here, switched on again starts, a changed setting
    rebuilds it; running with the same settings, nothing happens."""
    import datetime

    from meiqia.channels import registry
    from meiqia.models import ChannelConfig
    from tests.channels import standin

    box = standin._box(ch_app)
    team = ch_api.team["id"]
    assert registry.sync(ch_app) == 1
    started, stopped = box["started"], box["stopped"]
    assert registry.sync(ch_app) == 1 and (box["started"], box["stopped"]) == (started, stopped)

    def saved_elsewhere(**changes) -> None:  # an UPDATE as the other process's save makes
        row = ChannelConfig.get(ChannelConfig.team == team, ChannelConfig.channel == "standin")
        ChannelConfig.update(updated_at=row.updated_at + datetime.timedelta(seconds=1),
                             **changes).where(ChannelConfig.id == row.id).execute()

    saved_elsewhere(enabled=False)
    assert registry.sync(ch_app) == 0
    assert box["stopped"] == stopped + 1 and (team, "standin") not in registry._started(ch_app)
    saved_elsewhere(enabled=True)
    registry.sync(ch_app)
    assert box["started"] == started + 1
    saved_elsewhere(config={"endpoint": "https://example.com/other", "api_key": "k2"})
    registry.sync(ch_app)
    assert box["started"] == started + 2 and box["stopped"] == stopped + 2
    assert registry.instance(team, "standin", ch_app).config["endpoint"] \
        == "https://example.com/other"

"""Settings forms in the admin's language: a channel's or ticket sink's field titles,
descriptions and drop-down labels (``enumNames``) worded per language are served in
the caller's language only.

An outside language check found the e-mail and WeChat dialogs labelled in both
languages on either page ("IMAP 服务器 IMAP host", "消息加解密方式 Encryption
mode：plain 明文 / compatible 兼容 / safe 安全"): each field's title was one bilingual
string. A plugin's plain one-language title is still shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.channels import Channel
from meiqia.hookspecs import hookimpl
from meiqia.testing.app import close_app
from meiqia.testing.app import make_app
from tests.helpers import ApiClient

CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
#: English words a Chinese label may carry: protocols and WeChat's own names.
PRODUCT_NAMES = {"IMAP", "SMTP", "IDLE", "SSL", "TLS", "STARTTLS", "ID", "AppID",
                 "AppSecret", "Token", "EncodingAESKey", "URL"}

#: A plugin's channel schema: per-language words, a plain one-language title, a
#: title given in English only, and an ``enumNames`` of the wrong length.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "enum": ["cn", "intl"], "default": "cn",
                   "title": {"zh-CN": "区域", "en": "Region"},
                   "enumNames": [{"zh-CN": "中国大陆", "en": "Mainland China"},
                                 "International"]},
        "endpoint": {"type": "string", "title": "Endpoint",
                     "description": {"zh-CN": "留空：默认地址", "en": "Empty: the default"}},
        "account": {"type": "string", "title": {"en": "Account"}},
        "tier": {"type": "string", "enum": ["a", "b"], "enumNames": ["A"]},
    },
}


class Gateway(Channel):
    type = "gateway"
    name = {"zh-CN": "网关", "en": "Gateway"}
    capabilities = frozenset()

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return SCHEMA

    def deliver(self, conversation: Any, message: Any) -> None:
        return None


class CrmSink:
    type = "crm"
    name = "CRM"

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {"type": "object", "properties": {
            "project": {"type": "string", "title": {"zh-CN": "项目代号", "en": "Project key"}},
            "token": {"type": "string", "title": "API token"}}, "secret": ["token"]}

    def create_ticket(self, ticket: Any, config: Any) -> None:
        return None

    def update_ticket(self, ticket: Any, config: Any, changes: Any) -> None:
        return None


class FormPlugin:
    @hookimpl
    def register_channels(self, app: Any) -> list[type]:
        return [Gateway]

    @hookimpl
    def register_ticket_sinks(self, app: Any) -> list[type]:
        return [CrmSink]


@pytest.fixture
def admin(tmp_path: Any) -> Iterator[ApiClient]:
    app = make_app(tmp_path, plugins=(FormPlugin(),))
    with app.app_context():
        yield ApiClient.registered(app)
    close_app(app)


def channels(api: ApiClient, lang: str) -> dict[str, dict[str, Any]]:
    listed = api.get("/api/v1/channels", headers={"X-Meiqia-Lang": lang})
    assert listed.status_code == 200, listed.get_json()
    return {c["type"]: c["schema"]["properties"] for c in listed.get_json()}


def words(fields: dict[str, Any]) -> list[str]:
    """What the form shows of each field: title, description, option labels."""
    out: list[str] = []
    for spec in fields.values():
        out += [spec[k] for k in ("title", "description") if k in spec]
        out += spec.get("enumNames", [])
    return out


def test_the_built_in_channels_forms_are_in_the_callers_language_only(admin):
    en, zh = channels(admin, "en"), channels(admin, "zh-CN")
    for slug in ("email", "wechat"):
        assert all(isinstance(w, str) for w in words(en[slug]) + words(zh[slug]))
        chinese = [w for w in words(en[slug]) if CJK.search(w)]
        assert not chinese, f"{slug}: Chinese on an English form: {chinese}"
        english = [w for w in words(zh[slug])
                   if set(re.findall(r"[A-Za-z]+", w)) - PRODUCT_NAMES]
        assert not english, f"{slug}: English words on a Chinese form: {english}"
    assert (en["email"]["imap_host"]["title"], zh["email"]["imap_host"]["title"]) == (
        "IMAP host", "IMAP 服务器")
    assert zh["email"]["smtp_user"]["description"] == "空：同 IMAP 用户名"
    mode_en, mode_zh = en["wechat"]["encryption_mode"], zh["wechat"]["encryption_mode"]
    assert mode_en["enum"] == mode_zh["enum"] == ["plain", "compatible", "safe"]
    assert mode_en["enumNames"] == ["Plaintext mode", "Compatible mode",
                                    "Safe mode (recommended)"]
    assert mode_zh["enumNames"] == ["明文模式", "兼容模式", "安全模式（推荐）"]
    assert en["email"]["imap_security"]["enumNames"][2] == "None (unencrypted)"
    assert zh["wechat"]["show_agent_name"]["title"] == "回复前显示客服名"


def test_a_plugins_form_words_are_its_own_per_language_or_plain(admin):
    en, zh = channels(admin, "en")["gateway"], channels(admin, "zh-CN")["gateway"]
    assert (en["region"]["title"], zh["region"]["title"]) == ("Region", "区域")
    assert en["region"]["enumNames"] == ["Mainland China", "International"]
    assert zh["region"]["enumNames"] == ["中国大陆", "International"]
    # A plain title is everyone's; a title in one language only is that one's.
    assert en["endpoint"]["title"] == zh["endpoint"]["title"] == "Endpoint"
    assert (en["endpoint"]["description"], zh["endpoint"]["description"]) == (
        "Empty: the default", "留空：默认地址")
    assert en["account"]["title"] == zh["account"]["title"] == "Account"
    # Labels that do not match the options are left out: the drop-down shows the values.
    assert "enumNames" not in en["tier"] and en["tier"]["enum"] == ["a", "b"]
    assert SCHEMA["properties"]["region"]["title"] == {"zh-CN": "区域", "en": "Region"}
    # Words per language change nothing of what is checked or stored.
    saved = admin.put("/api/v1/channels/gateway", json={"enabled": True, "config": {
        "region": "intl", "endpoint": "x", "account": "acme", "tier": "b"}})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["config"]["region"] == "intl"
    refused = admin.put("/api/v1/channels/gateway", json={"config": {"region": "mars"}})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "config.region"


def test_ticket_sink_forms_are_in_the_callers_language_only(admin):
    def sink_types(lang: str) -> dict[str, dict[str, Any]]:
        answer = admin.get("/api/v1/ticket-sinks/types", headers={"X-Meiqia-Lang": lang})
        assert answer.status_code == 200, answer.get_json()
        return {t["type"]: t["schema"]["properties"] for t in answer.get_json()}

    en, zh = sink_types("en"), sink_types("zh-CN")
    assert not [w for t in en.values() for w in words(t) if CJK.search(w)]
    assert (en["webhook"]["secret"]["title"], zh["webhook"]["secret"]["title"]) == (
        "Signing secret", "签名密钥")
    assert (en["email"]["host"]["title"], zh["email"]["host"]["title"]) == (
        "SMTP server", "SMTP 服务器")
    assert (en["crm"]["project"]["title"], zh["crm"]["project"]["title"]) == (
        "Project key", "项目代号")
    assert en["crm"]["token"]["title"] == zh["crm"]["token"]["title"] == "API token"
    created = admin.post("/api/v1/ticket-sinks", json={
        "type": "crm", "name": "CRM", "config": {"project": "SUP", "token": "t"}})
    assert created.status_code == 201, created.get_json()

"""Channels in the browser: the admin's Channels page (a form from the channel's
schema, secrets write-only, test connection) and, in the workspace, the
channel's tag, each reply's delivery state, and sending a failed one again."""

from __future__ import annotations

from playwright.sync_api import expect

from meiqia.channels import receive
from meiqia.channels import registry
from meiqia.models import ChannelConfig
from meiqia.models import ChannelDelivery
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.browser.conftest import serve
from tests.channels import standin


def test_an_admin_configures_a_channel_from_its_schema(tmp_path, new_context):
    with serve(tmp_path, plugins=(standin,)) as server, server.app.app_context():
        from tests.helpers import ApiClient

        api = ApiClient.registered(server.app)
        page = new_context(viewport={"width": 1360, "height": 820}).new_page()
        login(page, server, next="/admin/channels")
        row = page.locator('#channels-table tr[data-type="standin"]')
        expect(row.locator(".channel-name")).to_have_text("测试渠道")
        # Each channel by its name in the reader's language, not with the internal slug
        # beside it ("邮件 email", "微信公众号 wechat" on a Chinese page: an outside tester).
        for slug in ("standin", "email", "wechat"):
            name = page.locator(f'#channels-table tr[data-type="{slug}"] td').first
            expect(name).to_have_text(registry.names(slug)["zh-CN"])
        expect(row.locator(".channel-state")).to_have_text("未配置")
        row.get_by_role("button", name="配置").click()
        dialog = page.locator("dialog[open]")
        dialog.locator('input[name="config.endpoint"]').fill("https://example.com/hook")
        dialog.locator('input[name="config.api_key"]').fill("s3cret-key")
        expect(dialog.locator('input[name="config.api_key"]')).to_have_attribute("type",
                                                                               "password")
        dialog.get_by_role("button", name="测试连接").click()
        expect(dialog.locator(".channel-test")).to_have_text(
            "连接正常：connected to https://example.com/hook")
        dialog.locator('input[name="enabled"]').check()
        dialog.get_by_role("button", name="保存").click()
        expect(row.locator(".channel-state")).to_have_text("已开启")
        stored = ChannelConfig.get(ChannelConfig.channel == "standin")
        assert stored.enabled and stored.config["api_key"] == "s3cret-key"
        # Opened again: the secret is not in the page, only that one is saved.
        row.get_by_role("button", name="配置").click()
        secret = page.locator('dialog[open] input[name="config.api_key"]')
        expect(secret).to_have_value("********")
        assert "s3cret-key" not in page.content()
        screenshot(page, "admin-channels")
        page.keyboard.press("Escape")
        # WeChat's dialog says which server URL to enter in the WeChat console (the
        # doc says the page shows it; an outside check found it nowhere).
        wechat = page.locator('#channels-table tr[data-type="wechat"]')
        wechat.get_by_role("button", name="配置").click()
        team_id = ChannelConfig.get(ChannelConfig.channel == "standin").team_id
        expect(page.locator("dialog[open] .channel-callback code")).to_have_text(
            f"{server.url}/channels/wechat/{team_id}/")
        # A channel nobody calls (it reads a mailbox) has none.
        assert api.get("/api/v1/channels/email").get_json()["callback_url"] is None


def test_the_workspace_shows_the_channel_and_resends_a_failed_reply(tmp_path, new_context):
    with serve(tmp_path, plugins=(standin,), CHANNEL_DELIVERY_RETRY=(1, (0,))) as server, \
            server.app.app_context():
        from tests.channels.conftest import enable
        from tests.helpers import ApiClient

        admin = ApiClient.registered(server.app)
        admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
        enable(server.app, admin.team["id"])
        admin.go_online()
        host = registry.make_host(admin.team["id"], "standin", app=server.app)
        receive(host, "mia@example.com", "我的订单还没到", display_name="Mia")
        page = new_context(viewport={"width": 1360, "height": 820}).new_page()
        login(page, server)
        item = page.locator("#ws-list .ws-item").first
        expect(item.locator(".channel-tag")).to_have_text("测试渠道")
        item.click()
        expect(page.locator("#chat-channel")).to_have_text("测试渠道")
        expect(page.locator("#act-rating")).to_be_hidden()  # the channel cannot carry it
        standin.fail(server.app, 2, reason="对方服务器 503")
        page.fill("#ws-input", "我帮您查一下物流")
        page.press("#ws-input", "Enter")
        state = page.locator("#ws-messages .ws-msg.from-agent .delivery").last
        expect(state).to_have_attribute("data-delivery", "failed")
        expect(state).to_contain_text("对方服务器 503")
        screenshot(page, "workspace-channel-delivery")
        state.get_by_role("button", name="重新发送").click()
        expect(state.locator("xpath=..").locator(".delivery")).to_have_attribute(
            "data-delivery", "sent")
        assert ChannelDelivery.select().where(ChannelDelivery.status == "sent").count() >= 1
        assert standin.outbox(server.app)[-1][1].body == "我帮您查一下物流"


def test_the_channels_page_says_when_the_mailbox_cannot_be_read(tmp_path, new_context):
    """The e-mail channel's reader failing (its IMAP server does not answer): the
    page said only "已开启" while nothing was read."""
    from tests.helpers import ApiClient
    from tests.helpers import wait_until
    from tests.integration.test_two_processes import free_port

    with serve(tmp_path, OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"]) as server, \
            server.app.app_context():
        admin = ApiClient.registered(server.app)
        closed = free_port()  # nothing listens there
        saved = admin.put("/api/v1/channels/email", json={"enabled": True, "config": {
            "imap_host": "127.0.0.1", "imap_port": closed, "imap_security": "none",
            "imap_user": "support@shop.test", "imap_password": "pw",
            "smtp_host": "127.0.0.1", "smtp_port": closed, "smtp_security": "none",
            "from_address": "support@shop.test", "poll_interval": 5}})
        assert saved.status_code == 200, saved.get_json()
        wait_until(lambda: admin.get("/api/v1/channels/email").get_json()["reader"]["state"]
                   == "failing", what="the reader's first failure")
        page = new_context(viewport={"width": 1360, "height": 820}).new_page()
        login(page, server, next="/admin/channels")
        state = page.locator('#channels-table tr[data-type="email"] .channel-reader')
        expect(state).to_have_attribute("data-reader", "failing")
        expect(state).to_contain_text("读取邮箱失败（连续 ")
        expect(state).to_contain_text("无法连接 IMAP 服务器")
        expect(state).to_contain_text("失败于 ")


def test_the_channel_dialogs_speak_the_pages_language_only(tmp_path, new_context):
    """The e-mail and WeChat settings dialogs labelled each field in both languages on
    either page ("IMAP 服务器 IMAP host", "消息加解密方式 Encryption mode：plain 明文 /
    compatible 兼容 / safe 安全": an outside language check). docs/ui.md: each person
    reads his own language; only protocol and WeChat names stay as they are."""
    from tests.browser.test_every_page import CJK
    from tests.browser.test_every_page import STRIP
    from tests.browser.test_every_page import WORD
    from tests.browser.test_every_page import ZH_ALLOWED
    from tests.helpers import ApiClient

    allowed = ZH_ALLOWED | {"IMAP", "IDLE", "SSL", "TLS", "AppID", "AppSecret", "Token",
                            "EncodingAESKey"}
    labels = {("zh-CN", "email"): "IMAP 服务器", ("en", "email"): "IMAP host",
              ("zh-CN", "wechat"): "回复前显示客服名",
              ("en", "wechat"): "Prefix agents' replies with their name"}
    options = {"zh-CN": ["明文模式", "兼容模式", "安全模式（推荐）"],
               "en": ["Plaintext mode", "Compatible mode", "Safe mode (recommended)"]}
    with serve(tmp_path) as server:
        with server.app.app_context():
            ApiClient.registered(server.app)
        page = new_context(viewport={"width": 1360, "height": 820}).new_page()
        login(page, server, next="/admin/channels")
        problems = []
        for lang in ("zh-CN", "en"):
            if lang == "en":
                page.goto(f"{server.url}/lang/en?next=/admin/channels")
            for slug in ("email", "wechat"):
                page.locator(f'#channels-table tr[data-type="{slug}"] .row-actions button').click()
                dialog = page.locator("dialog[open]")
                expect(dialog.locator("select").first).to_be_visible()
                # What the admin reads in the dialog: its text, every option, the words
                # of its controls. Not the callback paragraph: it names the WeChat
                # console's own (Chinese) menu for the English admin to find there.
                text = dialog.evaluate("""(box) => {
                  let shown = box.innerText;
                  for (const n of box.querySelectorAll('.channel-callback')) shown = shown.replace(n.innerText, ' ');
                  return [shown, ...[...box.querySelectorAll('option')].map((o) => o.text),
                    ...[...box.querySelectorAll('[placeholder],[title],[aria-label]')].flatMap((n) =>
                      ['placeholder', 'title', 'aria-label'].map((a) => n.getAttribute(a) || ''))].join('\\n');
                }""")
                assert labels[lang, slug] in [x.removesuffix(" *") for x in text.splitlines()]
                if lang == "en":
                    bad = sorted({line.strip() for line in text.splitlines() if CJK.search(line)})
                else:
                    bad = sorted(set(WORD.findall(STRIP.sub(" ", text))) - allowed)
                if bad:
                    problems.append(f"{lang} {slug}: {bad}")
                if slug == "wechat":
                    mode = dialog.locator('select[name="config.encryption_mode"] option')
                    expect(mode).to_have_text(options[lang])
                    expect(dialog.locator('select[name="config.encryption_mode"]')).to_have_value(
                        "safe")
                page.keyboard.press("Escape")
                expect(page.locator("dialog[open]")).to_have_count(0)
        assert not problems, problems

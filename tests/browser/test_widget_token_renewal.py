"""The widget keeps its visitor across token expiry (issue 15, item 11), in Chromium:
a token past half its life is renewed silently; an expired one, with the renewal
key the browser holds, resumes the same conversation."""

from __future__ import annotations

import datetime
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_widget import open_widget
from tests.security.test_visitor_tokens import aged_token


def stored(page: Any, team_id: int, key: str) -> Any:
    return page.evaluate(
        "([t, k]) => JSON.parse(localStorage.getItem(`meiqia.${t}.${k}`))", [team_id, key])


def stored_once_set(page: Any, team_id: int, key: str) -> Any:
    """``stored`` once the widget has written it: a message typed at once shows before
    the session's answer is stored (a full run read the token as null there)."""
    page.wait_for_function("([t, k]) => localStorage.getItem(`meiqia.${t}.${k}`) !== null",
                           arg=[team_id, key])
    return stored(page, team_id, key)


def store(page: Any, team_id: int, key: str, value: Any) -> None:
    page.evaluate("([t, k, v]) => localStorage.setItem(`meiqia.${t}.${k}`, JSON.stringify(v))",
                  [team_id, key, value])


def test_renewal_before_expiry_and_resume_after_it(server, admin, new_context):
    team = admin.team["id"]
    page = new_context().new_page()
    frame = open_widget(page, server, team)
    frame.locator("#mq-input").fill("我的订单还没到")
    frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-status[data-status=sent], "
                         ".mq-msg.mine .mq-status[data-status=read], "
                         ".mq-msg.mine .mq-status[data-status=delivered]")).to_have_count(
        1, timeout=15000)  # the first question builds the bot's index: slow on a busy machine
    first = stored_once_set(page, team, "token")
    assert first and stored(page, team, "renew_key")

    # 20 of 30 days gone: the widget swaps the token for a fresh one on its own.
    soon = (datetime.datetime.utcnow() + datetime.timedelta(days=10)).isoformat() + "Z"
    store(page, team, "token", aged_token(server.app, first, 20))
    store(page, team, "token_expires_at", soon)
    page.reload()
    page.locator("#meiqia-widget .mq-button").click()
    frame = page.frame_locator("#meiqia-widget iframe")
    expect(frame.locator(".mq-msg.mine")).to_have_count(1)
    page.wait_for_function(
        "([t, s]) => JSON.parse(localStorage.getItem(`meiqia.${t}.token_expires_at`)) > s",
        arg=[team, soon])

    # 40 days gone: expired; the renewal key brings back the same conversation.
    store(page, team, "token", aged_token(server.app, first, 40))
    page.reload()
    page.locator("#meiqia-widget .mq-button").click()
    frame = page.frame_locator("#meiqia-widget iframe")
    expect(frame.locator(".mq-msg.mine .mq-text")).to_have_text(["我的订单还没到"])
    assert stored(page, team, "token") != aged_token(server.app, first, 40)


def test_a_void_renewal_key_is_dropped_and_the_visitor_chats_on(server, admin, new_context):
    """A key the server no longer takes (one of before the v2 keys, docs/security.md
    §11): the session resumes his live token but answers no key, the renewal is
    refused, and the widget forgets the key (not retried every hour) and chats on."""
    team = admin.team["id"]
    page = new_context().new_page()
    frame = open_widget(page, server, team)
    frame.locator("#mq-input").fill("发票怎么开")
    frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-text")).to_have_text(["发票怎么开"], timeout=15000)
    first = stored_once_set(page, team, "token")
    soon = (datetime.datetime.utcnow() + datetime.timedelta(days=10)).isoformat() + "Z"
    half_gone = aged_token(server.app, first, 20)
    store(page, team, "token", half_gone)
    store(page, team, "token_expires_at", soon)
    store(page, team, "renew_key", "0" * 43)
    page.reload()
    page.locator("#meiqia-widget .mq-button").click()
    frame = page.frame_locator("#meiqia-widget iframe")
    page.wait_for_function(
        "(t) => localStorage.getItem(`meiqia.${t}.renew_key`) === 'null'", arg=team)
    expect(frame.locator(".mq-msg.mine .mq-text")).to_have_text(["发票怎么开"])
    # The same token, no longer than it was: nothing renewed it.
    assert stored(page, team, "token") == half_gone
    frame.locator("#mq-input").fill("还在吗")
    frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-text")).to_have_text(["发票怎么开", "还在吗"])

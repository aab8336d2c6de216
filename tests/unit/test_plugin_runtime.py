"""The plugin runtime without an application: per-plugin pools, budgets, the
breaker, notifications off the caller's path, the privacy fallback mask."""

from __future__ import annotations

import logging
import threading
import time
import types

from meiqia.hookspecs import hookimpl
from meiqia.plugin_runtime import PluginRuntime
from meiqia.plugin_runtime.budgets import budget_for
from meiqia.plugin_runtime.privacy import PluginUnavailable
from meiqia.plugin_runtime.privacy import fail_closed
from meiqia.plugin_runtime.privacy import mask
from meiqia.plugin_runtime.runtime import Failure
from meiqia.plugin_runtime.runtime import Settings
from meiqia.plugins import make_plugin_manager
from tests.helpers import wait_until


def _plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        fn.__name__ = hook_name
        setattr(module, hook_name, hookimpl(fn))
    return module


def test_a_plugin_hanging_in_notifications_costs_only_its_own_threads(tmp_path, caplog):
    """The failure of issue 18: a hanging track_event filled the one shared pool and
    the redactor behind it timed out. Here the observer's 4 threads fill up, every
    further event is refused at once (busy, named), and the redactor answers each
    time, its pool untouched. The events that find its threads and backlog full are
    dropped with a count (a failure only once its threads ran past the budget)."""
    release = threading.Event()
    hung = []

    def observe(event):
        hung.append(event)
        release.wait(30)

    redactor = _plugin("redactor", before_message_saved=lambda message, conversation: {
        "body": mask(message["body"])})
    observer = _plugin("observer", track_event=observe)
    pm = make_plugin_manager(tmp_path, extra=[observer, redactor],
                             runtime=PluginRuntime(Settings(threads=4, backlog=0,
                                                                breaker_failures=1000)))
    try:
        with caplog.at_level(logging.WARNING):
            for n in range(40):
                assert pm.call("track_event", event={"name": "message.created", "n": n}) == []
                checked = pm.call_detailed("before_message_saved", conversation=None,
                                           message={"body": f"电话 1380013{n:04d}"})
                assert checked.failures == []
                assert checked.results == [{"body": "电话 ***********"}]
        wait_until(lambda: len(hung) == 4, what="the observer's four threads")
        assert pm.runtime.busy_threads("observer") == 4
        assert pm.runtime.busy_threads("redactor") == 0
        # Its threads busy within their budget: dropped and counted, not a failure.
        assert caplog.text.count("plugin observer: hook track_event dropped an event: its "
                                 "backlog is full (4 threads and 0 waiting calls)") == 36
        assert pm.runtime.figures("observer")["track_event"]["dropped"] == 36
        assert "redactor" not in caplog.text
    finally:
        release.set()


def test_each_call_waits_at_most_its_budget_and_names_the_plugin(tmp_path, caplog):
    gate = threading.Event()

    def slow_links(actor, request):
        gate.wait(30)
        return [{"href": "/x", "label": "慢"}]

    fast = _plugin("fast_links", menu_links=lambda actor, request: [{"href": "/y", "label": "快"}])
    slow = _plugin("slow_links", menu_links=slow_links)
    runtime = PluginRuntime(Settings(budgets={"menu_links": 0.1}))
    pm = make_plugin_manager(tmp_path, extra=[slow, fast], runtime=runtime)
    try:
        with caplog.at_level(logging.ERROR):
            done = pm.call_detailed("menu_links", actor=None, request=None)
        assert done.results == [[{"href": "/y", "label": "快"}]]
        assert done.failures == [Failure("slow_links", "menu_links", "timeout", "0.1s")]
        assert "plugin slow_links: hook menu_links timed out after 0.1s" in caplog.text
    finally:
        gate.set()


def test_budgets_default_configured_and_capped():
    assert budget_for("before_message_saved", {}, 5.0) == 1.0
    assert budget_for("before_message_saved", {}, 0.3) == 0.3  # HOOK_TIMEOUT caps
    assert budget_for("assign_agent", {"assign_agent": 2.0}, 0.3) == 2.0  # named: as named
    assert budget_for("create_ticket", {}, 5.0) == 30.0  # jobs: not capped


def test_the_breaker_suspends_after_failures_in_a_row_and_lets_one_call_through_later(tmp_path):
    from meiqia.plugin_runtime.state import StateStore

    class MemoryStore(StateStore):
        """The store without a database: its snapshot only (the thread is not started)."""

        def _start(self) -> None:
            pass

    calls = []

    def flaky(actor, request):
        calls.append(1)
        raise RuntimeError("坏了")

    runtime = PluginRuntime(Settings(breaker_failures=3, suspend_seconds=0.5))
    runtime.store = MemoryStore(db=None)  # type: ignore[arg-type]
    pm = make_plugin_manager(tmp_path, extra=[_plugin("flaky", menu_links=flaky)], runtime=runtime)
    for _ in range(10):
        pm.call("menu_links", actor=None, request=None)
    assert len(calls) == 3  # then suspended: not called, skipped fast
    done = pm.call_detailed("menu_links", actor=None, request=None)
    assert done.failures[0].kind == "suspended"
    assert runtime.figures("flaky")["menu_links"]["skipped"] == 8
    wait_until(lambda: runtime.store.suspended_until("flaky") is None, 5, "the suspension over")
    pm.call("menu_links", actor=None, request=None)  # half-open: one call, it fails
    pm.call("menu_links", actor=None, request=None)
    assert len(calls) == 4
    assert runtime.store.suspended_until("flaky") is not None


def test_a_hook_that_keeps_failing_trips_the_plugin_while_its_other_hooks_succeed(tmp_path):
    """Found from outside: a redactor that hung on every message was never suspended
    because the same plugin's track_event succeeded in between, and each success
    reset the plugin's count; /healthz said it was not failing. The count is per
    hook now: a success resets only its own hook's."""
    from meiqia.plugin_runtime.state import StateStore

    class MemoryStore(StateStore):
        """The store without a database: its snapshot only (the thread is not started)."""

        def _start(self) -> None:
            pass

    redactions = []
    broken = {"redactor": True}

    def redact(message, conversation):
        redactions.append(message["body"])
        if broken["redactor"]:
            raise RuntimeError("坏了")
        return None

    plugin = _plugin("watcher", before_message_saved=redact,
                     menu_links=lambda actor, request: [{"href": "/w", "label": "看"}])
    runtime = PluginRuntime(Settings(breaker_failures=3, suspend_seconds=0.5))
    runtime.store = MemoryStore(db=None)  # type: ignore[arg-type]
    pm = make_plugin_manager(tmp_path, extra=[plugin], runtime=runtime)

    def message(n: int) -> list:
        return pm.call_detailed("before_message_saved", conversation=None,
                                message={"body": f"第{n}条"}).failures

    def links() -> None:
        assert pm.call_detailed("menu_links", actor=None, request=None).failures == []

    # A success of the failing hook itself still resets its count.
    message(0)
    message(1)
    broken["redactor"] = False
    assert message(2) == []
    assert runtime.failing() == []
    broken["redactor"] = True
    message(3)
    assert runtime.failing() == ["watcher"]
    links()  # another hook's success: the redactor's last call still failed
    assert runtime.failing() == ["watcher"]
    message(4)
    links()
    assert runtime.store.suspended_until("watcher") is None  # 2 in a row
    message(5)  # the third in a row, with menu_links succeeding between each
    assert runtime.store.suspended_until("watcher") is not None
    assert message(6)[0].kind == "suspended"
    assert len(redactions) == 6
    wait_until(lambda: runtime.store.suspended_until("watcher") is None, 5, "the suspension over")
    links()  # half-open: menu_links succeeds, which does not vouch for the redactor
    message(7)  # the redactor's first failure suspends the plugin again at once
    assert runtime.store.suspended_until("watcher") is not None
    runtime.reset("watcher")
    assert runtime.failing() == []


def test_calls_started_before_a_reset_do_not_suspend_the_plugin_again(tmp_path):
    """Found from outside: track_event hung, the breaker opened, the admin fixed the
    plugin and pressed Reset; seconds later the hung calls ended, counted as
    timeouts, and suspended the plugin again for 300 s with no new failure."""
    from meiqia.plugin_runtime.state import StateStore

    class MemoryStore(StateStore):
        """The store without a database: its snapshot only (the thread is not started)."""

        def _start(self) -> None:
            pass

        def reset(self, plugin: str) -> None:
            with self._lock:
                self._local.pop(plugin, None)

    release = threading.Event()
    hung = []

    def observe(event):
        hung.append(event)
        release.wait(30)

    runtime = PluginRuntime(Settings(budgets={"track_event": 0.1}, threads=2, backlog=0,
                                     breaker_failures=2, suspend_seconds=300))
    runtime.store = MemoryStore(db=None)  # type: ignore[arg-type]
    pm = make_plugin_manager(tmp_path, extra=[_plugin("observer", track_event=observe)],
                             runtime=runtime)
    try:
        for n in range(2):  # two hang
            pm.call("track_event", event={"name": "message.created", "n": n})
        wait_until(lambda: len(hung) == 2, what="the observer's two threads")
        began = time.monotonic()
        wait_until(lambda: time.monotonic() - began > 0.2, what="the budget (0.1 s) past")
        for n in range(2, 4):  # two more are refused as busy: the breaker opens
            pm.call("track_event", event={"name": "message.created", "n": n})
        assert runtime.store.suspended_until("observer") is not None
        runtime.reset("observer")  # the admin's Reset (plugin_admin.reset does both)
        runtime.store.reset("observer")
        began = time.monotonic()
        wait_until(lambda: time.monotonic() - began > 0.2, what="the budget (0.1 s) past")
        release.set()  # the old calls end now, past their budget: two timeouts
        wait_until(lambda: runtime.busy_threads("observer") == 0, what="the old calls over")
        # Counted in the figures since the Reset (they ended after it), not by the breaker.
        assert runtime.figures("observer")["track_event"]["timeouts"] == 2
        assert runtime.store.suspended_until("observer") is None
        # A new failure after the Reset counts as before.
        hung.clear()
        release.clear()
        pm.call("track_event", event={"name": "message.created", "n": 9})
        wait_until(lambda: len(hung) == 1, what="a new hung call")
        began = time.monotonic()
        wait_until(lambda: time.monotonic() - began > 0.2, what="its budget past")
        release.set()
        wait_until(lambda: runtime.busy_threads("observer") == 0, what="it ended late")
        assert runtime.store.suspended_until("observer") is None  # one failure of two
    finally:
        release.set()


def test_the_fallback_mask_covers_phones_ids_cards_and_emails_in_chinese_text():
    text = ("我的手机13800138000，座机021-12345678，身份证 11010519491231002X，"
            "卡号 6222 0212 3456 7890，邮箱 zhang.san@example.com，订单A1001明天到")
    masked = mask(text)
    for secret in ("13800138000", "12345678", "110105194912310", "7890", "zhang.san@example.com"):
        assert secret not in masked, secret
    assert "订单A1001明天到" in masked  # four digits: not personal, kept
    assert masked.startswith("我的手机***********，座机")


def test_fail_closed_masks_or_refuses():
    draft = {"body": "电话 13800138000", "payload": {}, "kind": "text"}
    failure = Failure("redactor", "before_message_saved", "timeout", "1s")
    assert fail_closed(draft, [], "refuse") is draft
    assert fail_closed(draft, [failure], "mask")["body"] == "电话 ***********"
    try:
        fail_closed(draft, [failure], "refuse")
    except PluginUnavailable as exc:
        assert exc.status == 503 and exc.code == "unavailable"
        assert "plugin redactor could not check it (before_message_saved timed out)" in exc.message
    else:
        raise AssertionError("refuse must raise")


def test_closing_the_state_store_while_its_first_use_starts_the_thread(monkeypatch):
    """An app torn down while a request still ran its first plugin check: close()
    joined the store's thread between its creation and its start ("cannot join
    thread before it is started", seen once in a full run). The thread's start is
    slowed here (the standard library's, not ours) so that close() lands in that
    window on every trial."""
    import peewee

    from meiqia.plugin_runtime.state import StateStore

    real_start = threading.Thread.start
    inside, closing = threading.Event(), threading.Event()

    def slow_start(self):  # noqa: ANN001, ANN202
        if self.name == "meiqia-plugin-state":
            inside.set()  # created and published before, not started yet
            closing.wait(5)  # start only once close() has been called
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    for _ in range(20):
        inside.clear()
        closing.clear()
        store = StateStore(peewee.SqliteDatabase(":memory:"), refresh=0.01)
        user = threading.Thread(target=store.is_off, args=("p", None))
        user.start()
        assert inside.wait(5)  # the user is inside _start, its thread not started yet
        closing.set()
        store.close()  # raised RuntimeError before
        user.join(5)
        assert store._thread is None or not store._thread.is_alive()

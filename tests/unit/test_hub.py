"""The event hub: in process, and across processes through Redis."""

from __future__ import annotations

import redis

from meiqia.hub import MemoryHub
from meiqia.hub import RedisHub
from meiqia.hub import make_redis
from meiqia.hub import wait_for


def test_memory_hub_delivers_to_subscribers_of_the_topic_only():
    hub = MemoryHub()
    a = hub.subscribe(["conversation:1"])
    b = hub.subscribe(["conversation:2", "agent:7"])
    hub.publish("conversation:1", {"type": "message", "data": {"body": "你好"}})
    hub.publish("agent:7", {"type": "mention"})
    assert a.drain() == [("conversation:1", {"type": "message", "data": {"body": "你好"}})]
    assert b.drain() == [("agent:7", {"type": "mention"})]
    b.remove("agent:7")
    hub.publish("agent:7", {"type": "mention"})
    assert b.get(timeout=0.01) is None
    a.close()
    hub.publish("conversation:1", {"type": "x"})
    assert a.drain() == []


def test_redis_hub_carries_events_between_two_hubs(redis_url, redis_prefix):
    """Two hubs on one Redis stand for two web processes."""
    one = RedisHub(make_redis(redis_url, 0.5), redis_prefix)
    two = RedisHub(make_redis(redis_url, 0.5), redis_prefix)
    try:
        assert one.wait_ready() and two.wait_ready()
        sub = two.subscribe(["conversation:42"])
        other = two.subscribe(["conversation:43"])
        # The pattern subscription is in place before the first publish.
        assert wait_for(lambda: _published(one, "conversation:42", sub))
        assert other.drain() == []
        assert one.health()["ok"] and two.health()["listening"]
    finally:
        one.close()
        two.close()


def _published(hub, topic, sub) -> bool:
    hub.publish(topic, {"type": "message", "data": {"body": "跨进程"}})
    item = sub.get(timeout=0.2)
    return item == (topic, {"type": "message", "data": {"body": "跨进程"}})


def test_redis_hub_publish_survives_unreachable_redis():
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    hub = RedisHub(client, "mqtest-down")
    try:
        hub.publish("conversation:1", {"type": "x"})  # logged, not raised
        health = hub.health()
        assert health["ok"] is False and "error" in health
    finally:
        hub.close()


def test_an_accept_filter_drops_events_before_they_are_queued():
    """An agent socket hears the team topic; what its scope rejects never wakes it."""
    hub = MemoryHub()
    mine = hub.subscribe(["team:1"], accept=lambda topic, event: event["data"]["handler_id"] == 7)
    everyone = hub.subscribe(["team:1"])
    for handler in (7, 8, 7):
        hub.publish("team:1", {"type": "message", "data": {"handler_id": handler}})
    assert [e["data"]["handler_id"] for _, e in mine.drain()] == [7, 7]
    assert len(everyone.drain()) == 3


def test_a_failing_accept_filter_queues_the_event_rather_than_lose_it():
    hub = MemoryHub()

    def broken(topic, event):
        raise KeyError("handler_id")

    sub = hub.subscribe(["team:1"], accept=broken)
    hub.publish("team:1", {"type": "message", "data": {}})
    assert sub.drain() == [("team:1", {"type": "message", "data": {}})]


def test_an_overflowing_queue_asks_for_a_resync_instead_of_losing_silently(monkeypatch):
    import meiqia.hub

    monkeypatch.setattr(meiqia.hub, "MAX_PENDING", 3)
    hub = MemoryHub()
    sub = hub.subscribe(["conversation:1"])
    for n in range(5):
        hub.publish("conversation:1", {"type": "message", "data": {"id": n}})
    assert sub.resync_since is not None  # the pump replays from the database
    assert len(sub.drain()) == 3
    assert sub.take_resync() is not None and sub.take_resync() is None


def test_a_resync_request_keeps_the_earliest_time_and_wakes_the_pump():
    from meiqia.hub import RESYNC

    hub = MemoryHub()
    sub = hub.subscribe(["conversation:1"])
    sub.request_resync(20.0)
    sub.request_resync(10.0)
    sub.request_resync(30.0)
    assert sub.get(timeout=0.1) is RESYNC
    assert sub.take_resync() == 10.0
    assert hub._resync_all(5.0) == 1 and sub.resync_since == 5.0

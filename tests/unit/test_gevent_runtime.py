"""Under gevent (``meiqia run``, gunicorn's gevent worker): plugin hooks run in the
caller's greenlet under their budget, and the semaphores are gevent's own (issue 19).

A subprocess, patched first as ``meiqia run`` is: this test process must stay unpatched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
from gevent import monkey
monkey.patch_all()
import json, time, threading
import gevent
from meiqia import embedded_server
from meiqia.plugin_runtime import PluginRuntime
from meiqia.plugin_runtime.runtime import Settings

out = {"patched": embedded_server.is_patched(),
       "semaphore": type(embedded_server.bounded_semaphore(2)).__module__}
runtime = PluginRuntime(Settings(threads=2, backlog=0, breaker_failures=1000))
finished = []
me = threading.get_ident()

def slow():
    time.sleep(30)  # patched: a wait the timeout interrupts
    finished.append(True)

def boom():
    raise ValueError("plugin bug")

def where():
    return threading.get_ident() == me

result, failure = runtime.run("p", "candidates_for", slow, {}, budget=0.2, inline=False)
out["slow"] = [result, failure.kind if failure else None, bool(finished)]
result, failure = runtime.run("p", "candidates_for", boom, {}, budget=5, inline=False)
out["boom"] = [result, failure.kind if failure else None]
result, failure = runtime.run("p", "candidates_for", where, {}, budget=5, inline=False)
out["same_greenlet"] = [result, failure]
print(json.dumps(out))
'''


def test_hooks_run_in_the_callers_greenlet_under_their_budget():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["patched"] is True
    assert out["semaphore"].startswith("gevent")
    assert out["slow"] == [None, "timeout", False]  # interrupted, never finished
    assert out["boom"] == [None, "raised"]
    assert out["same_greenlet"] == [True, None]


FAN_OUT = r'''
from gevent import monkey
monkey.patch_all()
import json, threading
import gevent
from meiqia import embedded_server
from meiqia.hub import MemoryHub

hub = MemoryHub()
drained, others_ran, inside = [], [], []
workers = []

def pump(sub):
    def run():
        inside.append(embedded_server.is_current(workers[-1]) or True)
        while not sub.queue.empty():
            drained.append(sub.queue.get_nowait())
    return run

for i in range(50):
    sub = hub.subscribe(["team:1"])
    sub.notify = lambda sub=sub: workers.append(embedded_server.start_worker(pump(sub)))

# 200 other greenlets ready to run, as sockets are in a busy server.
for _ in range(200):
    gevent.spawn(others_ran.append, True)
hub.publish("team:1", {"type": "message", "data": {"id": 1}})
out = {"workers": len(workers), "others_ran_during_publish": len(others_ran),
       "drained_during_publish": len(drained),
       "kind": type(workers[0]).__module__}
for w in workers:
    w.join(5)
out["drained"] = len(drained)
me = embedded_server.start_worker(lambda: out.update(current=embedded_server.is_current(me)))
me.join(5)
out["current_outside"] = embedded_server.is_current(me)
print(json.dumps(out))
'''


def test_a_publish_that_wakes_50_pumps_does_not_wait_for_them_to_start():
    """A patched ``Thread.start`` waits until the thread ran: a publisher holding a
    database turn queued behind every ready greenlet once per socket it woke (the
    embedded run's dump). ``start_worker`` only schedules the pump."""
    done = subprocess.run([sys.executable, "-c", FAN_OUT], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["workers"] == 50 and out["kind"].startswith("gevent")
    assert out["others_ran_during_publish"] == 0  # the publisher never yielded
    assert out["drained_during_publish"] == 0
    assert out["drained"] == 50  # and every pump ran afterwards
    assert out["current"] is True and out["current_outside"] is False


def test_start_worker_is_a_daemon_thread_without_gevent():
    import threading

    from meiqia import embedded_server

    ran, started = [], threading.Event()
    box = {}

    def check():
        started.wait(5)  # a thread runs at once: wait until its handle is known
        ran.append(embedded_server.is_current(box["worker"]))

    worker = box["worker"] = embedded_server.start_worker(check)
    started.set()
    worker.join(5)
    assert isinstance(worker, threading.Thread) and worker.daemon
    assert ran == [True] and not embedded_server.is_current(worker)

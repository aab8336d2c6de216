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

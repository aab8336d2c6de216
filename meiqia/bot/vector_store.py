"""Sentence vectors of knowledge-base questions, kept on disk for every process.

Why: each web process builds its own index, and a process that starts embeds
its English knowledge bases' questions again (about 2-3 ms each with the int8
graph: 15,000 questions, 40 s before the bot of that team answers; each gunicorn
worker at once after a deploy). The vectors depend only on the question's text
and on the model graph, so they are kept in one SQLite file per graph in the
cache folder (``cache.cache_dir``), shared by the processes of the machine: a
worker that starts reads them back in milliseconds.

What is kept: the questions of knowledge bases (``Encoder.encode`` with
``cache=True``), under the first 16 bytes of the text's sha256, as float16.
Never a visitor's question: those are encoded with ``cache=False`` and go
nowhere. A vector unused for ``KEEP_DAYS`` days is deleted when a process
opens the file, so questions edited away do not pile up.

Any failure (a folder that cannot be written, a damaged file, a disk full)
costs only the speed: the store turns itself off for the process with one
warning and the model embeds as before. A file that is not a database is
replaced once, and so is a damaged one; a kept vector of the wrong size is
embedded again and overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: A vector not used for this many days is deleted when a process opens the file.
KEEP_DAYS = 30
#: Keys per statement (SQLite's default limit on parameters is far above it).
CHUNK = 500


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def _today() -> int:
    return int(time.time() // 86400)


class VectorStore:
    """One graph's vectors in one SQLite file; thread-safe, process-shared."""

    def __init__(self, path: Path, dimensions: int) -> None:
        self.path = path
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._off = False

    def _open(self) -> sqlite3.Connection | None:
        """The connection, opened (and pruned) on first use; None once off.

        A process forked after the parent opened it (an rq work horse) opens
        its own: an SQLite connection must not cross a fork, so the inherited
        one is dropped unused. A file that is not a database, or a damaged
        one, is replaced once."""
        if self._db is not None and self._pid != os.getpid():
            self._db = None
        if self._db is not None or self._off:
            return self._db
        try:
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as exc:
                if "not a database" not in str(exc) and "malformed" not in str(exc):
                    raise
                log.warning("bot: %s is not a vector store; making it anew", self.path)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                self._db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
        self._pid = os.getpid()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        """A connection to the file, made 0600, in WAL, with the table, pruned."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Made 0600 before SQLite opens it: its -wal and -shm files take the
        # database file's mode, and the umask would make all three readable by
        # every user (docs/security.md).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS vector (key BLOB PRIMARY KEY, "
                       "vec BLOB NOT NULL, used INTEGER NOT NULL) WITHOUT ROWID")
            db.execute("DELETE FROM vector WHERE used < ?", (_today() - KEEP_DAYS,))
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _fail(self, exc: Exception) -> None:
        self._off = True
        if self._db is not None:
            self._db.close()
            self._db = None
        log.warning("bot: the vector store %s is off for this process (%s); questions "
                    "are embedded by the model", self.path, exc)

    def get(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The kept vectors (float16) of those ``texts`` that have one."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            db = self._open()
            if db is None or not texts:
                return found
            keys = {_key(t): t for t in texts}
            listed = list(keys)
            today = _today()
            try:
                for start in range(0, len(listed), CHUNK):
                    part = listed[start:start + CHUNK]
                    marks = ",".join("?" * len(part))
                    for key, vec in db.execute(
                            f"SELECT key, vec FROM vector WHERE key IN ({marks})", part):
                        vector = np.frombuffer(vec, dtype=np.float16)
                        if vector.shape == (self.dimensions,):
                            found[keys[bytes(key)]] = vector
                    db.execute(f"UPDATE vector SET used = ? WHERE used < ? AND key IN ({marks})",
                               [today, today, *part])
            except sqlite3.Error as exc:
                self._fail(exc)
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Keep ``vectors`` (text → vector), over what was kept for those texts."""
        with self._lock:
            db = self._open()
            if db is None or not vectors:
                return
            today = _today()
            rows = [(_key(t), np.asarray(v, dtype=np.float16).tobytes(), today)
                    for t, v in vectors.items()]
            try:
                db.execute("BEGIN IMMEDIATE")
                # REPLACE: a text reaches ``put`` only when no good vector was
                # kept for it, so a row there has the wrong size (or came from
                # another process a moment ago, the same vector).
                db.executemany("INSERT OR REPLACE INTO vector (key, vec, used) VALUES (?, ?, ?)",
                               rows)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._fail(exc)

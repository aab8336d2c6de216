"""An on-disk cache of built indexes for ``meiqia bot ask --kb FILE``.

Building and calibrating an index from a large KB file takes seconds; asking
one question takes a millisecond. The CLI asks one question per call, so it
keeps the built (and calibrated) index in a pickle named after the file's
content and the bot's code: the second call loads it instead of rebuilding.
A changed file or a changed bot gets a new name; a cache that cannot be read
or written is ignored (the index is built as before).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import BinaryIO

_CODE = ("index.py", "calibrate.py", "lexicon.py", "normalize.py", "kbfile.py", "semantic.py")


def cache_dir() -> Path:
    """``$MEIQIA_CACHE_DIR``, else ``$XDG_CACHE_HOME/meiqia``, else ``~/.cache/meiqia``."""
    explicit = os.environ.get("MEIQIA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meiqia"


def cache_key(kb_path: str | Path) -> str:
    """Hash of the KB file's bytes, of the bot's source files and of whether
    sentence embeddings are on (``BOT_EMBEDDINGS``: an index built with them
    answers differently)."""
    from meiqia.bot import semantic

    digest = hashlib.sha256(Path(kb_path).read_bytes())
    here = Path(__file__).resolve().parent
    for name in _CODE:
        digest.update((here / name).read_bytes())
    digest.update(repr(semantic.settings()).encode())
    return digest.hexdigest()[:32]


def cached_index(kb_path: str | Path, target: float = 0.95) -> Any:
    """The calibrated index of a KB file, from the cache when it is there."""
    from meiqia.bot.index import KBIndex
    from meiqia.bot.kbfile import load_kb

    path = cache_dir() / f"bot-index-{cache_key(kb_path)}-{target}.pickle"
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    index = KBIndex(load_kb(kb_path), background_rebuild=False)
    index.calibrate(target)
    try:
        write_atomic(path, lambda fh: pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass
    return index


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Make ``path`` (and its folder) with what ``write`` writes into the open
    file, so that a parallel reader sees the old file or the whole new one,
    never half of it; a failed write leaves no stray file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        try:
            write(tmp)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)

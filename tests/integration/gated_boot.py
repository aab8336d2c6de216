"""``meiqia.wsgi:app`` for gunicorn, whose loading in a worker waits while the test
keeps a gate file in place: a boot as long as the test needs (in production, the
bot's indexes on a large knowledge base), without a timing guess.

Each worker writes ``loading-<pid>`` as its load starts and ``loaded-<pid>`` once
the app is loaded, in ``MEIQIA_TEST_BOOT_DIR``.
"""

import os
import time
from pathlib import Path

_DIR = Path(os.environ["MEIQIA_TEST_BOOT_DIR"])
(_DIR / f"loading-{os.getpid()}").touch()
_deadline = time.monotonic() + 120  # a test that died must not leave workers waiting
while (_DIR / "gate").exists() and time.monotonic() < _deadline:
    time.sleep(0.05)

from meiqia.wsgi import app  # noqa: E402

(_DIR / f"loaded-{os.getpid()}").touch()

__all__ = ["app"]

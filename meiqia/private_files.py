"""Folders and files of the instance that hold customers' data: only the service's
user may read them.

Exports (whole transcripts, phone numbers) and uploads (what visitors sent) were
made with the process's umask: 0644 files in 0755 folders on a usual system, so
every local account could read them. An outside check found it. The folders are
now 0700 (also one made earlier, at the next use) and the files 0600 from the
moment they are created; nothing of ours needs another user to read them (the
server sends every file itself, after its scope check; docs/security.md §12). The
instance folder itself (the SQLite database, the secret key) is made 0700 the same
way when the app starts, with its ``uploads/`` and ``exports/`` (``instance_folders``).
"""

from __future__ import annotations

import logging
import os
import stat

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600

#: The instance's folders of customers' files (docs/security.md §12).
INSTANCE_FOLDERS = ("uploads", "exports")


def private_folder(path: str) -> str:
    """``path`` as a folder only its owner may enter (made if missing, narrowed
    if it was made wider before)."""
    os.makedirs(path, mode=FOLDER_MODE, exist_ok=True)
    if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
        try:
            os.chmod(path, FOLDER_MODE)
        except PermissionError as exc:  # another user's folder: its files stay 0600
            log.warning("cannot make %s private (mode 0700): %s", path, exc)
    return path


def private_opener(path: str, flags: int) -> int:
    """``open(..., opener=private_opener)``: a new file is 0600 from its creation."""
    return os.open(path, flags, FILE_MODE)


def make_private(path: str) -> None:
    """Narrow a file another library wrote (an XLSX export) to 0600."""
    os.chmod(path, FILE_MODE)


def instance_folders(instance_path: str) -> None:
    """The instance folder and its ``uploads/`` and ``exports/``, made private now.

    Made when the app starts (``meiqia init``, every server), not at the first
    upload: the backup of docs/deploy.md §6 (``tar … uploads``) failed with
    "uploads: Cannot stat" on an instance nobody had uploaded to yet.
    """
    private_folder(instance_path)
    for name in INSTANCE_FOLDERS:
        private_folder(os.path.join(instance_path, name))

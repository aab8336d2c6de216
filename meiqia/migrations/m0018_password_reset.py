"""One-time password reset links (issue 17, item 3): the ``password_reset`` table.

Nothing to carry over: the table is new and starts empty.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    from meiqia.models import PasswordReset

    PasswordReset.create_table(safe=True)

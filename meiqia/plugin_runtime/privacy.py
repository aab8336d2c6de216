"""Privacy hooks fail closed: a message no redactor could look at is never stored as it is.

When an implementation of ``before_message_saved`` raises (for a message a
visitor or an agent wrote, see ``PEOPLE``), runs past its budget,
finds its threads all busy or is suspended by the breaker, the message is, by
``PRIVACY_FALLBACK``:

* ``mask`` (default): stored with the safe fallback below applied to its body,
  so the chat goes on (the payload, which holds references such as an
  attachment's id, is kept);
* ``refuse``: not stored; the sender gets ``unavailable`` (503 on REST, an
  ``error`` frame on sockets) and sends it again with the same client_msg_id,
  as after a database hiccup (the widget does so by itself).

The fallback masks what can be recognised without knowing the redactor's
rules: e-mail addresses, and every run of 5 or more digits (phone numbers,
ID-card, bank-card and order numbers), spaces, dots and dashes inside the run
included. It masks more than most redactors, never less of these; text a
redactor would have removed for other reasons (names, addresses) is not
recognised: choose ``refuse`` when that matters more than the chat going on.
An admin who turns the plugin off (Plugins page) decides that its messages go
unchecked: a plugin that is off is not called and not replaced.
"""

from __future__ import annotations

import re
from typing import Any

from meiqia.services.errors import ServiceError

FALLBACKS = ("mask", "refuse")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: 5+ digits, ASCII or full-width, possibly split by spaces, dots or dashes.
_DIGITS = re.compile(r"(?:[+＋])?[0-9０-９](?:[ \-.－—]?[0-9０-９]){4,}")


#: Senders whose messages people typed: only theirs can hold what a redactor hides.
#: Bot answers and system notices are meiqia's own text and are stored even when
#: a privacy hook fails (logged like any failure).
PEOPLE = frozenset({"visitor", "agent"})


class PluginUnavailable(ServiceError):
    """A privacy hook could not check the message: it was not stored; send it again."""

    status = 503
    code = "unavailable"


def mask(text: str) -> str:
    """``text`` with e-mail addresses and runs of 5+ digits replaced by ``*``."""
    text = _EMAIL.sub(lambda m: "*" * len(m.group(0)), text)
    return _DIGITS.sub(lambda m: "*" * len(m.group(0)), text)


def fail_closed(draft: dict[str, Any], failures: list[Any], mode: str) -> dict[str, Any]:
    """The draft as it may be stored after ``failures`` of privacy hooks, or raise
    ``PluginUnavailable`` (``refuse``)."""
    if not failures:
        return draft
    first = failures[0]
    if mode == "refuse":
        raise PluginUnavailable(
            f"the message was not sent: plugin {first.plugin} could not check it "
            f"({first.hook} {first.kind}); send it again")
    body = draft["body"]
    return {**draft, "body": mask(body) if isinstance(body, str) else body}

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

Redactors run one after the other (``check_message``), each given the message as
the ones before changed it, so every redactor's changes are kept; an answer that
is not a valid change (``malformed``) is a failure of its plugin like raising.
What is never stored is not shown either: while a redactor is on for a team, a
visitor's typing preview carries no text (``typing_preview``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meiqia.services.errors import ServiceError
from meiqia.services.errors import ValidationError

FALLBACKS = ("mask", "refuse")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: 5+ digits, ASCII or full-width, possibly split by spaces, dots or dashes.
_DIGITS = re.compile(r"(?:[+＋])?[0-9０-９](?:[ \-.－—]?[0-9０-９]){4,}")


#: Senders whose messages people typed: only theirs can hold what a redactor hides.
#: Bot answers and system notices are meiqia's own text and are stored even when
#: a privacy hook fails (logged like any failure).
PEOPLE = frozenset({"visitor", "agent"})

HOOK = "before_message_saved"
#: What a redactor may change, and what it may only hand back unchanged (``{**message,
#: "body": …}``): the rest of the message's fields.
CHANGEABLE = ("body", "payload")
FIXED = ("sender_kind", "kind", "visibility")


class PluginUnavailable(ServiceError):
    """A privacy hook could not check the message: it was not stored; send it again."""

    status = 503
    code = "unavailable"


def mask(text: str) -> str:
    """``text`` with e-mail addresses and runs of 5+ digits replaced by ``*``."""
    text = _EMAIL.sub(lambda m: "*" * len(m.group(0)), text)
    return _DIGITS.sub(lambda m: "*" * len(m.group(0)), text)


#: How a refusal names a failure's kind (``Failure.kind``).
REFUSAL_WORDS = {"raised": "raised an error", "timeout": "timed out",
                 "busy": "timed out: all its threads are busy", "suspended": "is suspended",
                 "malformed": "returned an unusable result"}


def fail_closed(draft: dict[str, Any], failures: list[Any], mode: str) -> dict[str, Any]:
    """The draft as it may be stored after ``failures`` of privacy hooks, or raise
    ``PluginUnavailable`` (``refuse``)."""
    if not failures:
        return draft
    first = failures[0]
    if mode == "refuse":
        # What went wrong in words (not the exception's text: the sender is told).
        raise PluginUnavailable(
            f"the message was not sent: plugin {first.plugin} could not check it "
            f"({first.hook} {REFUSAL_WORDS.get(first.kind, first.kind)}); send it again")
    body = draft["body"]
    return {**draft, "body": mask(body) if isinstance(body, str) else body}


def malformed(change: Any, message: Mapping[str, Any] | None = None) -> str | None:
    """Why a ``before_message_saved`` answer is not a valid change of ``message``, or
    None. Valid: None; a dict of ``body`` (text) and/or ``payload`` (a mapping),
    the other fields of the message only unchanged; ``{"reject": "reason"}``.
    Everything else, an unknown key included (``{"bdy": …}`` would store the text
    unredacted), is unusable: a failure of the plugin, and the message fails
    closed. Says what is wrong, never the values (they may be what is hidden)."""
    if change is None:
        return None
    if not isinstance(change, Mapping):
        return f"expected a dict or None, got {type(change).__name__}"
    if change.get("reject"):
        return None if isinstance(change["reject"], str) else \
            f"reject: expected text, got {type(change['reject']).__name__}"
    unknown = sorted(str(k) for k in change if k not in (*CHANGEABLE, *FIXED, "reject"))
    if unknown:
        return f"unknown key {', '.join(unknown)}; a change may hold body and payload"
    if "body" in change and not isinstance(change["body"], str):
        return f"body: expected text, got {type(change['body']).__name__}"
    if "payload" in change and not isinstance(change["payload"], Mapping):
        return f"payload: expected a dict, got {type(change['payload']).__name__}"
    for key in FIXED:
        if key in change and (message is None or change[key] != message[key]):
            return f"{key}: may not be changed (only body and payload may)"
    return None


def check_message(pm: Any, draft: dict[str, Any], conversation: Any,
                  fallback: str) -> dict[str, Any]:
    """``draft`` as every redactor left it, each run in turn on what the ones before
    made of it (``pm.call_in_turn``): what may be stored. Raises ValidationError
    for a ``reject``, ``PluginUnavailable`` when one failed and ``fallback`` is
    ``refuse``; masks (``mask``) a person's message when one failed."""
    from meiqia.plugin_api import PluginMessage

    draft = dict(draft)
    conversation_id = getattr(conversation, "id", None)
    rejected: list[str] = []

    def fold(plugin: str, change: Mapping[str, Any], kwargs: dict[str, Any]
             ) -> dict[str, Any] | None:
        if change.get("reject"):
            rejected.append(change["reject"])
            return None  # refused: the redactors after it need not look
        for key in CHANGEABLE:
            if key in change:
                draft[key] = change[key] if key == "body" else dict(change[key])
        return {**kwargs, "message": PluginMessage.from_draft(draft, conversation_id)}

    def check(change: Any) -> str | None:
        return malformed(change, draft)

    checked = pm.call_in_turn(HOOK, fold, check=check,
                              message=PluginMessage.from_draft(draft, conversation_id),
                              conversation=conversation)
    if rejected:
        raise ValidationError(f"message refused: {rejected[0]}", "body")
    if draft["sender_kind"] in PEOPLE:  # bot and system texts are ours: nothing to hide
        draft = fail_closed(draft, checked.failures, fallback)
    return draft


def typing_preview(team_id: int | None, preview: Any) -> str:
    """The text a visitor's typing preview may show his team's agents: none (``""``)
    while a ``before_message_saved`` of a plugin other than the built-ins is on for
    the team, since that text has passed no redactor (fails closed; running them
    on every keystroke would cost a redaction a key); else its first 200
    characters. The agents still see that he is typing."""
    return "" if redactors_on(team_id) else str(preview)[:200]


def redactors_on(team_id: int | None) -> bool:
    """Whether a ``before_message_saved`` of a plugin other than the built-ins is on
    for the team (none of the built-ins redacts). Without one, a message's store
    reads nothing of its conversation's row beyond what never changes and what the
    store's own statement reads back (``ws._visitor_frame``)."""
    from flask import current_app

    pm = current_app.extensions["meiqia.plugins"]
    for impl in pm.hook.before_message_saved.get_hookimpls():
        if getattr(impl.plugin, "__meiqia_origin__", "plugin") == "built-in":
            continue
        if not pm.runtime.is_off(pm.plugin_name(impl.plugin), team_id):
            return True
    return False

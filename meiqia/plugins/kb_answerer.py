"""Built-in answerer: the team's knowledge base (``meiqia.services.knowledge``)."""

from __future__ import annotations

import logging
from typing import Any

from meiqia.hookspecs import hookimpl

log = logging.getLogger(__name__)


class KnowledgeBaseAnswerer:
    """Answers from the team's enabled KB entries through its live index, or
    from ``index`` when given (a KB file's: ``meiqia bot ask --kb``, ``bot eval``)."""

    name = "knowledge_base"
    priority = 0

    def __init__(self, index: Any = None) -> None:
        self.index = index

    def answer(self, question: str, conversation: Any) -> list[dict]:
        index = self.index
        if index is None:
            from meiqia.services import knowledge

            index = knowledge.index_for(conversation.team_id)
        found = []
        for candidate in index.query(question, k=5):
            if not (candidate.answer or "").strip():
                # The team's data, not a fault of this answerer: an entry stored with
                # a blank answer (before such entries were refused) is left out here,
                # so it never counts against the answerer's breaker, and the bot never
                # says nothing (docs/bot.md).
                log.warning("bot: entry %s: the answer is blank; left out", candidate.entry_id)
                continue
            found.append(candidate.to_dict())
        return found


@hookimpl
def register_answerers(app: Any) -> list[Any]:
    return [KnowledgeBaseAnswerer()]

"""Built-in answerer: the team's knowledge base (``meiqia.services.knowledge``)."""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


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
        return [c.to_dict() for c in index.query(question, k=5)]


@hookimpl
def register_answerers(app: Any) -> list[Any]:
    return [KnowledgeBaseAnswerer()]

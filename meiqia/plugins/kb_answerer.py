"""Built-in answerer: the team's knowledge base (``meiqia.services.knowledge``)."""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


class KnowledgeBaseAnswerer:
    """Answers from the team's enabled KB entries through its live index."""

    name = "knowledge_base"

    def answer(self, question: str, conversation: Any) -> list[dict]:
        from meiqia.services import knowledge

        index = knowledge.index_for(conversation.team_id)
        return [c.to_dict() for c in index.query(question, k=5)]


@hookimpl
def register_answerers(app: Any) -> list[Any]:
    return [KnowledgeBaseAnswerer()]

"""Merging the candidates of several answerers, and the bot's decision.

Pure functions (no Flask, no models): ``services/bot.ask`` calls them for the
live bot, the bot console, ``meiqia bot ask`` and ``meiqia bot eval``, so all
four decide alike. The rules are the contract of docs/plugins.md ("How the bot
merges answerers"):

* a candidate is a dict with ``entry_id`` and ``answer`` (text, not blank),
  ``score`` (a finite number) and optionally ``question`` (text); a malformed one
  is dropped (and reported to the caller, which counts it as a failure of the
  answerer's plugin); scores are clamped to [0, 1];
* candidates naming the same ``entry_id`` are one entry: the best score is
  kept; on equal scores, the candidate of the answerer with the higher
  ``priority``;
* the merged list is ordered best score first; equal scores by ``priority``
  (higher first), then by the order the answerers were registered;
* the team's thresholds apply to the merged list's first candidate, whichever
  answerer it came from: at or above ``answer_threshold`` the bot answers with
  it, at or above ``suggest_threshold`` it offers the candidates at or above
  that threshold ("did you mean", at most three), else the question is
  unrecognised. Scores are not rescaled: the knowledge base's own are
  calibrated to this scale (docs/bot.md), a plugin's are taken as it gives them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: At most this many "did you mean" suggestions.
MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class Answered:
    """What one answerer returned, with what the merge needs to know of it."""

    source: str
    priority: int
    candidates: list[Any]


class Malformed(ValueError):
    """A candidate the bot cannot use: what is wrong with it, never its values (they
    may be private)."""


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def problem_of(candidate: Any) -> str | None:
    """Why ``candidate`` is unusable (docs/plugins.md, "How the bot merges
    answerers"), or None: a dict whose ``entry_id`` is text (not blank), ``answer``
    text that is not blank (the bot never replies with nothing, nor with a
    dict or a number made into text), ``score`` a finite number and ``question``,
    when there, text or None."""
    if not isinstance(candidate, Mapping):
        return f"expected a dict, got {_type_name(candidate)}"
    for key in ("entry_id", "answer", "score"):
        if key not in candidate:
            return f"{key}: missing"
    entry_id, answer, score = candidate["entry_id"], candidate["answer"], candidate["score"]
    if not isinstance(entry_id, str):
        return f"entry_id: expected text, got {_type_name(entry_id)}"
    if not entry_id.strip():
        return "entry_id: blank"
    if not isinstance(answer, str):
        return f"answer: expected text, got {_type_name(answer)}"
    if not answer.strip():
        return "answer: blank"
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        return f"score: expected a number, got {_type_name(score)}"
    if not math.isfinite(float(score)):
        return "score: not a finite number"
    question = candidate.get("question")
    if question is not None and not isinstance(question, str):
        return f"question: expected text, got {_type_name(question)}"
    return None


def clean(candidate: Any, source: str) -> dict[str, Any]:
    """One candidate as the bot uses it, or Malformed (``problem_of``)."""
    problem = problem_of(candidate)
    if problem is not None:
        raise Malformed(problem)
    return {
        "entry_id": candidate["entry_id"],
        "question": candidate.get("question") or "",
        "answer": candidate["answer"].strip(),
        "score": min(1.0, max(0.0, float(candidate["score"]))),
        "source": source,
    }


def merge(answered: Iterable[Answered], k: int,
          malformed: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """The best ``k`` candidates of all answerers, deduplicated by ``entry_id``.

    ``answered`` is in registration order. A malformed candidate is skipped and
    ``(source, reason)`` appended to ``malformed`` when given."""
    best: dict[str, tuple[tuple[float, int, int], dict[str, Any]]] = {}
    for order, result in enumerate(answered):
        for candidate in result.candidates or ():
            try:
                item = clean(candidate, result.source)
            except Malformed as exc:
                if malformed is not None:
                    malformed.append((result.source, str(exc)))
                continue
            rank = (-item["score"], -result.priority, order)
            held = best.get(item["entry_id"])
            if held is None or rank < held[0]:
                best[item["entry_id"]] = (rank, item)
    ordered = sorted(best.values(), key=lambda pair: pair[0])
    return [item for _rank, item in ordered[:k]]


@dataclass(frozen=True)
class Decision:
    """``kind`` is ``answer``, ``suggest`` or ``unrecognised``; ``shown`` the
    candidates the visitor sees (the answer, or the suggestions)."""

    kind: str
    shown: list[dict[str, Any]]


def decide(candidates: list[dict[str, Any]], answer_threshold: float,
           suggest_threshold: float) -> Decision:
    """Answer, suggest ("did you mean") or declare the question unrecognised."""
    if not candidates or candidates[0]["score"] < suggest_threshold:
        return Decision("unrecognised", [])
    if candidates[0]["score"] >= answer_threshold:
        return Decision("answer", candidates[:1])
    return Decision("suggest", [c for c in candidates
                                if c["score"] >= suggest_threshold][:MAX_SUGGESTIONS])

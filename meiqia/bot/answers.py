"""Merging the candidates of several answerers, and the bot's decision.

Pure functions (no Flask, no models): ``services/bot.ask`` calls them for the
live bot, the bot console, ``meiqia bot ask`` and ``meiqia bot eval``, so all
four decide alike. The rules are the contract of docs/plugins.md ("How the bot
merges answerers"):

* a candidate is a dict with ``entry_id``, ``answer``, ``score`` and
  optionally ``question``; a malformed one is dropped (and reported to the
  caller, which logs it with the answerer's name); scores are clamped to [0, 1];
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

from collections.abc import Iterable
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
    """A candidate that is not a dict with entry_id, answer and a numeric score."""


def clean(candidate: Any, source: str) -> dict[str, Any]:
    """One candidate as the bot uses it, or Malformed."""
    try:
        score = float(candidate["score"])
        if score != score:  # NaN
            raise ValueError("score is NaN")
        answer = str(candidate["answer"]).strip()
        if not answer:  # nothing to say: never the bot's reply (an empty message)
            raise ValueError(f"entry {candidate['entry_id']}: the answer is blank")
        return {
            "entry_id": str(candidate["entry_id"]),
            "question": str(candidate.get("question", "") or ""),
            "answer": answer,
            "score": min(1.0, max(0.0, score)),
            "source": source,
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Malformed(f"{type(exc).__name__}: {exc}") from None


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

"""Self-calibration: the bot measures itself on a knowledge base and sets its
own thresholds, so that its direct answers reach a target precision there.

Fixed thresholds fitted once on one data set cannot fit every team: on a dense
KB (a bank's, where many entries look alike) the same score means a wrong
answer far more often than on a sparse one. So when an index is built, the bot
asks itself questions whose answers it knows, on a copy of the KB that has not
seen them (``calibrate``):

- **held-out variants** (in scope): of each entry with two questions or more,
  one question in eight (at least one, never the last) is taken out; asked
  against the rest, the right answer is that entry;
- **held-out entries** (out of scope): about one entry in six is taken out
  whole; its questions, asked against the rest, have no right answer there and
  look like the KB (the hardest kind of out-of-scope question).

Each question gets the raw score of its best candidate and the *margin* to the
second. The answer point (score and margin) is the one with the most right
direct answers whose precision (right / answered, the out-of-scope questions
weighted to be ``OOS_SHARE`` of all questions) reaches the target; the
suggest point the one that best separates "the right entry is in the top 3"
from "nothing right to offer". Entries whose questions are taken for each
other are reported as *competing*: the fix for those is in the content.

The result rescales the raw score (``Calibration.rescale``) so that the
calibrated answer point is 0.7 and the suggest point 0.5: the team's
thresholds (defaults 0.7 / 0.5) keep their meaning on every KB, and every
answerer's scores stay comparable. Too small a KB (fewer than
``MIN_IN_SCOPE`` held-out variants or ``MIN_OUT_OF_SCOPE`` held-out
questions) keeps the default scale: a handful of questions cannot measure a
precision of 0.95, and a wrong measurement is worse than none.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from meiqia.bot.kbfile import KBEntry

#: The scale every calibrated score is put on (the team defaults).
ANSWER_POINT = 0.7
SUGGEST_POINT = 0.5
#: Default target: direct answers right this often (team setting bot_target_precision).
DEFAULT_TARGET = 0.95
#: Below these, a KB keeps the default scale (docs/bot.md, "small knowledge bases").
MIN_IN_SCOPE = 100
MIN_OUT_OF_SCOPE = 20
#: Out-of-scope questions are weighted as this share of all questions: for the
#: answer point (a held-out entry's question often has a near-duplicate entry
#: elsewhere in the KB, so it overstates how like the KB real strangers are;
#: 0.15 was chosen on the development sets: at 0.2 the zh_faq bot answered
#: under half of its questions (precision 0.982), at 0.12 its precision fell to
#: 0.948 and CLINC150's answer point degenerated to "any lead of 0.4")...
OOS_SHARE = 0.15
#: ... and for the suggest point.
SUGGEST_OOS_SHARE = 0.2
#: One question in HOLD_EVERY of an entry is held out (at least one).
HOLD_EVERY = 8
#: One entry in HOLD_ENTRY_EVERY is held out whole (out-of-scope questions).
HOLD_ENTRY_EVERY = 6
#: At most this many calibration questions (time at 100,000 variants).
MAX_QUESTIONS = 3000
#: Margins tried for the answer point (raw score of the best minus the second).
MARGINS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
#: What a "did you mean" to an out-of-scope question costs against one that
#: offers the right entry: less than a wrong answer (the visitor sees the
#: choices and can say none fits), so the suggest point leans to offering.
SUGGEST_OOS_COST = 0.5
#: The unknown-word weight learned per KB is at most this (log-odds per unit).
MAX_OOV_WEIGHT = 4.0
#: Competing pairs reported, at most.
MAX_COMPETING = 50


@dataclass
class Calibration:
    """Where the raw scores of one index answer and suggest; see the module doc."""

    answer_score: float = ANSWER_POINT
    answer_margin: float = 0.0
    suggest_score: float = SUGGEST_POINT
    target: float = DEFAULT_TARGET
    #: False: the default scale (not measured, or too small a KB).
    calibrated: bool = False
    #: Why not calibrated, or "" when it is.
    reason: str = "not measured yet"
    in_scope: int = 0
    out_of_scope: int = 0
    #: Measured on the calibration questions at the chosen points (None: no denominator).
    precision: float | None = None
    coverage: float | None = None
    suggest_precision: float | None = None
    oos_recall: float | None = None
    #: False when no answer point reaches the target (the bot then only suggests);
    #: None when nothing was measured (the default scale: ``calibrated`` is False).
    target_reached: bool | None = None
    competing: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: How much the question's share of words the KB lacks (``features["oov"]``)
    #: lowers its scores, in log-odds per unit of share (``fit_oov_weight``);
    #: 0 until measured.
    oov_weight: float = 0.0

    def adjusted(self, raw: float, oov: float) -> float:
        """``raw`` with the unknown-word evidence of its question taken in:
        ``sigmoid(logit(raw) - oov_weight * oov)``. The same for every
        candidate of a question, so it never changes their order."""
        if not self.oov_weight or not oov:
            return raw
        p = min(max(raw, 1e-9), 1 - 1e-9)
        z = math.log(p / (1 - p)) - self.oov_weight * oov
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def rescale(self, raw: float, margin: float, oov: float = 0.0) -> float:
        """The raw score on the calibrated scale (answer at 0.7, suggest at 0.5).

        Monotone in ``raw`` below the answer point; only a candidate that also
        leads its rival by ``answer_margin`` reaches 0.7 (so only the best one).
        Below it, the score is first ``adjusted`` for the question's unknown
        words (``oov``): they move the cut to unrecognised, not the answer.
        """
        a, s = self.answer_score, self.suggest_score
        if raw >= a and margin >= self.answer_margin and a < 1.0:
            return min(1.0, ANSWER_POINT + (1 - ANSWER_POINT) * (raw - a) / (1.0 - a))
        raw = self.adjusted(raw, oov)
        if raw >= s:
            span = max(a - s, 1e-6)
            return min(ANSWER_POINT - 0.001,
                       SUGGEST_POINT + (ANSWER_POINT - SUGGEST_POINT) * (raw - s) / span)
        return SUGGEST_POINT * raw / s if s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("answer_score", "answer_margin", "suggest_score", "seconds", "oov_weight"):
            data[key] = round(data[key], 4)
        return data


DEFAULT = Calibration()

#: Where each scoring model answers and suggests when a KB is too small to
#: measure itself: the points its calibration found on the development sets
#: (raw answer score, raw suggest score; benchmarks/bot_eval.py): with the
#: classifier on CLINC150, plain on CLINC150 without the classifier, plain
#: for Chinese questions on zh_faq dev. The raw scores of the three logistic
#: models mean different things, so one fixed pair of thresholds cannot fit all.
DEFAULT_POINTS = {"clf": (0.580, 0.270), "plain": (0.825, 0.295), "plain_zh": (0.850, 0.249)}
#: ... and the margin to the next entry the answer point asks for there.
DEFAULT_MARGINS = {"clf": 0.4}
MODELS = tuple(DEFAULT_POINTS)
DEFAULT_BY_MODEL = {
    model: Calibration(answer_score=a, suggest_score=s,
                       answer_margin=DEFAULT_MARGINS.get(model, 0.0),
                       reason="default scale of this scoring model (development sets)")
    for model, (a, s) in DEFAULT_POINTS.items()
}


@dataclass
class _Asked:
    expected: str  # "" out of scope
    question: str
    top: list[tuple[str, float]]  # (entry id, raw score), best first
    oov: float = 0.0  # the question's share of words the KB lacks

    @property
    def raw(self) -> float:
        return self.top[0][1] if self.top else 0.0

    @property
    def margin(self) -> float:
        if not self.top:
            return 0.0
        return self.top[0][1] - (self.top[1][1] if len(self.top) > 1 else 0.0)

    @property
    def right(self) -> bool:
        return bool(self.top) and self.top[0][0] == self.expected


def split(entries: list[KBEntry], seed: int = 0
          ) -> tuple[list[KBEntry], list[tuple[str, str]], list[str]]:
    """The KB without the held-out questions, the questions (question,
    expected id; "" out of scope) and the ids of the entries held out whole."""
    rng = random.Random(seed)
    usable = [e for e in entries if e.enabled and e.questions]
    order = list(range(len(usable)))
    rng.shuffle(order)
    whole = {usable[i].id for n, i in enumerate(order)
             if n % HOLD_ENTRY_EVERY == HOLD_ENTRY_EVERY - 1}
    if len(usable) - len(whole) < 2:
        whole = set()
    kept: list[KBEntry] = []
    asked: list[tuple[str, str]] = []
    for entry in usable:
        if entry.id in whole:
            asked.extend((q, "") for q in entry.questions[:2])
            continue
        questions = list(entry.questions)
        held: list[str] = []
        if len(questions) >= 2:
            n_hold = max(1, len(questions) // HOLD_EVERY)
            picks = set(rng.sample(range(len(questions)), n_hold))
            held = [q for i, q in enumerate(questions) if i in picks]
            questions = [q for i, q in enumerate(questions) if i not in picks]
        kept.append(KBEntry(entry.id, questions, entry.answer, entry.category, entry.tags,
                            entry.enabled))
        asked.extend((q, entry.id) for q in held)
    if len(asked) > MAX_QUESTIONS:
        asked = rng.sample(asked, MAX_QUESTIONS)
    return kept, asked, sorted(whole)


def calibrate(entries: list[KBEntry], build: Callable[[list[KBEntry]], Any],
              target: float = DEFAULT_TARGET, seed: int = 0,
              progress: Callable[[float, str], None] | None = None) -> Calibration:
    """Measure an index built by ``build(entries)`` on held-out questions of
    ``entries`` and return where it should answer and suggest (module doc)."""
    import time

    say = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    kept, questions, _ = split(entries, seed)
    n_in = sum(1 for _, e in questions if e)
    n_oos = len(questions) - n_in
    asked: list[_Asked] = []
    if questions:
        say(0.05, f"building a copy without {len(questions):,} questions")
        index = build(kept)
        for n, (question, expected) in enumerate(questions):
            if n % 200 == 0:
                say(0.3 + 0.6 * n / len(questions), f"asking {n:,} of {len(questions):,}")
            cands = index.raw_query(question, k=3)
            asked.append(_Asked(expected, question, [(c.entry_id, c.score) for c in cands],
                                cands[0].features.get("oov", 0.0) if cands else 0.0))
    if n_in < MIN_IN_SCOPE or n_oos < MIN_OUT_OF_SCOPE:
        result = Calibration(target=target, in_scope=n_in, out_of_scope=n_oos,
                             reason=f"too few questions to measure ({n_in} held-out variants, "
                             f"{n_oos} held-out entries' questions; at least {MIN_IN_SCOPE} "
                             f"and {MIN_OUT_OF_SCOPE} needed): default thresholds")
        result.competing = competing_pairs(asked, entries)
        result.seconds = time.perf_counter() - started
        return result
    result = choose(asked, target, fit_oov_weight(asked))
    result.competing = competing_pairs(asked, entries)
    result.seconds = time.perf_counter() - started
    say(1.0, "calibrated")
    return result


def fit_oov_weight(asked: list[_Asked]) -> float:
    """How much a question's share of unknown words (``_Asked.oov``) should
    lower its scores on this KB, learned from the KB's own self-test.

    A logistic model "the best candidate is right" (held-out variants whose
    best candidate is right) against "out of scope" (held-out entries'
    questions) over the log-odds of the raw score and the unknown share; the
    weight is the unknown share's coefficient over the score's, so that the
    score keeps its scale. 0 when the share does not point to out of scope
    (or the model cannot be fitted), at most ``MAX_OOV_WEIGHT``.

    Why per KB: on a KB whose held-out entries share their words with the
    rest, unknown words say little (CLINC150: 0.4), on a sparse FAQ they say
    much (zh_faq: 3.8); the held-out entries understate it for real strangers
    (their words are in the KB more often), so the weight errs low.
    """
    rows = [(a.raw, a.oov, 1) for a in asked if a.expected and a.right]
    rows += [(a.raw, a.oov, 0) for a in asked if not a.expected]
    labels = {y for _, _, y in rows}
    if len(labels) < 2 or not any(o for _, o, _ in rows):
        return 0.0
    from sklearn.linear_model import LogisticRegression

    p = np.clip(np.asarray([r for r, _, _ in rows]), 1e-6, 1 - 1e-6)
    x = np.column_stack([np.log(p / (1 - p)), [o for _, o, _ in rows]])
    y = np.asarray([y for _, _, y in rows])
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)
    a, b = (float(c) for c in model.coef_[0])
    if a <= 0 or b >= 0:
        return 0.0
    return float(min(-b / a, MAX_OOV_WEIGHT))


def choose(asked: list[_Asked], target: float, oov_weight: float = 0.0) -> Calibration:
    """The answer and suggest points on the asked questions (module doc).

    The answer point is chosen on the raw scores; the suggest point (the cut
    to unrecognised) on the scores adjusted for unknown words with
    ``oov_weight``: that evidence is about "is this in the KB at all", not
    about which entry, and moving the answer point with it cost the zh_faq
    development set answer precision (0.957 to 0.948)."""
    probe = Calibration(oov_weight=oov_weight)
    ins = [a for a in asked if a.expected]
    oos = [a for a in asked if not a.expected]
    n_in, n_oos = len(ins), len(oos)
    w_oos = OOS_SHARE / (1 - OOS_SHARE) * n_in / n_oos if n_oos else 0.0
    w_sug = SUGGEST_OOS_SHARE / (1 - SUGGEST_OOS_SHARE) * n_in / n_oos if n_oos else 0.0
    raw_in = np.asarray([a.raw for a in ins])
    m_in = np.asarray([a.margin for a in ins])
    ok_in = np.asarray([a.right for a in ins])
    raw_oos = np.asarray([a.raw for a in oos])
    m_oos = np.asarray([a.margin for a in oos])
    candidates = np.unique(np.concatenate([raw_in, raw_oos, [1.0]]))
    best: tuple[float, float, float, float] | None = None  # (coverage, score, margin, prec)
    for margin in MARGINS:
        for score in candidates:
            hit = (raw_in >= score) & (m_in >= margin)
            wrong_oos = float(((raw_oos >= score) & (m_oos >= margin)).sum()) * w_oos
            right = float((hit & ok_in).sum())
            answered = float(hit.sum()) + wrong_oos
            # One more wrong answer than seen: a small sample must not look perfect.
            if answered == 0 or right / (answered + 1.0) < target:
                continue
            coverage = right / n_in
            if best is None or coverage > best[0] + 1e-9:
                best = (coverage, float(score), margin, right / answered)
    reached = best is not None
    if best is None:  # never sure enough: everything becomes a suggestion
        best = (0.0, 1.0, 0.0, float("nan"))
    _, a_score, a_margin, _ = best
    # Suggest point: top 3 holds the right entry (in scope) vs nothing to offer,
    # on the scores adjusted for unknown words.
    raw_in = np.asarray([probe.adjusted(a.raw, a.oov) for a in ins])
    raw_oos = np.asarray([probe.adjusted(a.raw, a.oov) for a in oos])
    in_top3 = np.asarray([any(e == a.expected for e, _ in a.top) for a in ins])
    best_s, best_gain = SUGGEST_POINT, -np.inf
    # Not capped by the answer score: with a margin condition, a question
    # above the answer score but too close to a rival still needs this point.
    for s in np.unique(np.concatenate([raw_in, raw_oos])):
        gain = (float(((raw_in >= s) & in_top3).sum())
                - 0.5 * float(((raw_in >= s) & ~in_top3).sum())
                - SUGGEST_OOS_COST * w_sug * float((raw_oos >= s).sum()))
        if gain > best_gain:
            best_s, best_gain = float(s), gain
    result = Calibration(answer_score=a_score, answer_margin=a_margin,
                         suggest_score=best_s, target=target, calibrated=True,
                         reason="", in_scope=n_in, out_of_scope=n_oos,
                         target_reached=reached, oov_weight=oov_weight)
    answered = [(a, a.raw >= a_score and a.margin >= a_margin) for a in asked]
    direct = [a for a, yes in answered if yes]
    right_direct = sum(1 for a in direct if a.expected and a.right)
    wrong_weight = sum(w_oos if not a.expected else (0.0 if a.right else 1.0) for a in direct)
    result.precision = (right_direct / (right_direct + wrong_weight)
                        if right_direct + wrong_weight else None)
    result.coverage = right_direct / n_in if n_in else None
    suggested = [a for a, yes in answered
                 if not yes and probe.adjusted(a.raw, a.oov) >= result.suggest_score]
    sug_in = [a for a in suggested if a.expected]
    sug_hit = sum(1 for a in sug_in if any(e == a.expected for e, _ in a.top))
    sug_weight = len(sug_in) + w_oos * (len(suggested) - len(sug_in))
    result.suggest_precision = sug_hit / sug_weight if sug_weight else None
    result.oos_recall = (sum(1 for a in oos if probe.adjusted(a.raw, a.oov) < result.suggest_score)
                         / n_oos
                         if n_oos else None)
    return result


def competing_pairs(asked: list[_Asked], entries: list[KBEntry]) -> list[dict[str, Any]]:
    """Pairs of entries whose questions were taken for each other: a held-out
    question of one whose best candidate was the other, or whose two best were
    these two within a small margin. Most frequent first, with the questions."""
    titles = {e.id: e.questions[0] for e in entries if e.questions}
    pairs: dict[tuple[str, str], list[str]] = {}
    for a in asked:
        if not a.expected or not a.top:
            continue
        ids = [e for e, _ in a.top]
        if ids[0] != a.expected:
            other = ids[0]
        elif len(a.top) > 1 and a.margin < 0.1:
            other = ids[1]
        else:
            continue
        if other == a.expected:
            continue
        key = tuple(sorted((a.expected, other)))
        pairs.setdefault(key, []).append(a.question)  # type: ignore[arg-type]
    ranked = sorted(pairs.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_COMPETING]
    return [{"entries": list(key), "standard_questions": [titles.get(k, "") for k in key],
             "questions": qs[:5], "count": len(qs)} for key, qs in ranked]

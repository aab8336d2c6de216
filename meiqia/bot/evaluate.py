"""``meiqia bot eval``: measure the bot on a KB file and a cases file (DESIGN §6).

Cases are a CSV ``query,expected_id``; an empty expected_id marks an
out-of-scope question, which the bot should declare unrecognised.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meiqia import spreadsheets
from meiqia.bot import answers
from meiqia.bot.index import DEFAULT_ANSWER_THRESHOLD
from meiqia.bot.index import DEFAULT_SUGGEST_THRESHOLD
from meiqia.bot.index import DEFAULT_TARGET
from meiqia.bot.index import KBIndex
from meiqia.bot.kbfile import decode
from meiqia.bot.kbfile import load_kb


def read_cases(path: str | Path) -> list[tuple[str, str]]:
    text = decode(Path(path).read_bytes(), str(path))
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"query", "expected_id"} <= set(reader.fieldnames):
        raise ValueError(f"{path}: the header needs the columns query,expected_id")
    return [((row["query"] or "").strip(), (row["expected_id"] or "").strip()) for row in reader]


#: The keys of DESIGN §6, then those of the calibration (issue 20), in order:
#: ``evaluate`` returns exactly these. Ratios without a denominator are None
#: (JSON null), never 0.0.
METRICS = ("n", "in_scope_accuracy", "oos_recall", "oos_precision", "suggest_rate",
           "p50_ms", "p99_ms", "build_s", "top1_accuracy", "answer_precision", "coverage",
           "suggest_precision", "thresholds", "cpu_p50_ms", "cpu_p99_ms", "oos_curve")


def evaluate(
    kb_path: str | Path,
    cases_path: str | Path,
    answer_threshold: float | None = None,
    suggest_threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    target: float = DEFAULT_TARGET,
    calibrate: bool = True,
) -> dict[str, Any]:
    """Build an index from ``kb_path``, calibrate it, answer every case, return
    ``METRICS`` (ratios are None when they have no denominator).
    ``progress(done, total)`` is called every 500 cases."""
    details = evaluate_details(kb_path, cases_path, answer_threshold, suggest_threshold,
                               progress, target=target, calibrate=calibrate)
    return {key: details[key] for key in METRICS}


#: Decisions of the live bot that give no answer from the knowledge base
#: (``small_talk``: a greeting or thanks, answered with the bot's own line).
NOT_ANSWERED = frozenset({"unrecognised", "human", "invalid", "small_talk"})


@dataclass(frozen=True)
class _Asked:
    kind: str
    candidates: list[dict[str, Any]]
    shown: list[dict[str, Any]]


def knowledge_base_only(index: KBIndex) -> Callable[[str, float, float], _Asked]:
    """Ask ``index`` alone, merged and decided as the live bot does (no plugins)."""
    def ask(question: str, answer_t: float, suggest_t: float) -> _Asked:
        found = answers.merge([answers.Answered(
            "knowledge_base", 0, [c.to_dict() for c in index.query(question, k=5)])], 3)
        decision = answers.decide(found, answer_t, suggest_t)
        return _Asked(decision.kind, found, decision.shown)

    return ask


def _ratio(hits: int, total: int | float) -> float | None:
    return hits / total if total else None


def evaluate_details(
    kb_path: str | Path,
    cases_path: str | Path,
    answer_threshold: float | None = None,
    suggest_threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    target: float = DEFAULT_TARGET,
    calibrate: bool = True,
    details_path: str | Path | None = None,
    ask: Callable[[KBIndex], Callable[[str, float, float], Any]] | None = None,
) -> dict[str, Any]:
    """``evaluate`` plus the KB size, the counts behind each ratio, the
    thresholds used and the calibration, for the report.

    The index calibrates itself on its own KB first (as a team's index does
    after a rebuild; ``calibrate=False`` keeps the default scale), so the
    figures are those a team would see. The cases are never used to choose
    anything. ``details_path``: one CSV row per case (query, expected,
    decision, top 3 with scores) for reading the bot's mistakes.

    Ratios are exact (not rounded): whether a goal such as 0.90 is met must
    not depend on how the number was printed.

    ``ask(index)`` returns the function each case is asked with,
    ``(question, answer_threshold, suggest_threshold) -> (kind, candidates,
    shown)``-like (``services.bot.Asked``): ``meiqia bot eval`` passes the live
    bot's, so plugin answerers are measured too. Without it, the index alone
    answers (``knowledge_base_only``), merged and decided by the same rules
    (``meiqia.bot.answers``). A case the live bot hands to a person (human
    words) or cannot read counts as not answered from the knowledge base, like
    an unrecognised one.
    """
    answer_t = DEFAULT_ANSWER_THRESHOLD if answer_threshold is None else answer_threshold
    suggest_t = DEFAULT_SUGGEST_THRESHOLD if suggest_threshold is None else suggest_threshold
    entries = load_kb(kb_path)
    cases = read_cases(cases_path)
    started = time.perf_counter()
    index = KBIndex(entries)
    build_s = time.perf_counter() - started
    calibration = index.calibrate(target) if calibrate else index.calibration
    latencies = []
    cpu_times = []
    #: (expected, top candidate right, its score) per case: the trade-off curve.
    tops: list[tuple[bool, bool, float]] = []
    in_scope = right = oos = oos_caught = unrecognised = suggested = 0
    top1 = answered = answered_right = suggest_hit = 0
    rows: list[list[str]] = []
    asker = (ask or knowledge_base_only)(index)
    for n, (query, expected) in enumerate(cases, start=1):
        t0, c0 = time.perf_counter(), time.thread_time()
        decision = asker(query, answer_t, suggest_t)
        cpu_times.append((time.thread_time() - c0) * 1000)
        latencies.append((time.perf_counter() - t0) * 1000)
        found = decision.candidates
        kind = "unrecognised" if decision.kind in NOT_ANSWERED else decision.kind
        top = decision.shown[0]["entry_id"] if decision.shown else None
        best = found[0]["entry_id"] if found else None
        if kind == "unrecognised":
            unrecognised += 1
        if kind == "answer":
            answered += 1
            answered_right += int(bool(expected) and top == expected)
        if kind == "suggest":
            suggested += 1
            suggest_hit += int(bool(expected) and any(c["entry_id"] == expected
                                                      for c in decision.shown))
        tops.append((bool(expected), best == expected,
                     float(found[0]["score"]) if found else 0.0))
        if expected:
            in_scope += 1
            right += int(kind != "unrecognised" and top == expected)
            top1 += int(best == expected)
        else:
            oos += 1
            oos_caught += int(kind == "unrecognised")
        if details_path is not None:
            cells = [query, expected, decision.kind]
            for cand in found[:3]:
                cells += [cand["entry_id"], f"{cand['score']:.4f}"]
            rows.append(cells + [""] * (9 - len(cells)))
        if progress is not None and n % 500 == 0:
            progress(n, len(cases))
    if details_path is not None:
        with open(details_path, "w", encoding="utf-8", newline="") as fh:
            writer = spreadsheets.csv_writer(fh)  # a query may start with =
            writer.writerow(["query", "expected_id", "decision", "top1_id", "top1_score",
                             "top2_id", "top2_score", "top3_id", "top3_score"])
            writer.writerows(rows)
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    cpu = np.asarray(cpu_times) if cpu_times else np.zeros(1)
    return {
        "n": len(cases),
        "in_scope_accuracy": _ratio(right, in_scope),
        "oos_recall": _ratio(oos_caught, oos),
        "oos_precision": _ratio(oos_caught, unrecognised),
        "suggest_rate": _ratio(suggested, len(cases)),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
        "oos_curve": oos_curve(tops),
        "build_s": round(build_s, 3),
        "top1_accuracy": _ratio(top1, in_scope),
        "answer_precision": _ratio(answered_right, answered),
        "coverage": _ratio(answered_right, in_scope),
        "suggest_precision": _ratio(suggest_hit, suggested),
        "thresholds": {
            "answer": answer_t, "suggest": suggest_t,
            "calibrated": calibration.calibrated,
            "raw_answer_score": round(calibration.answer_score, 4),
            "raw_answer_margin": round(calibration.answer_margin, 4),
            "raw_suggest_score": round(calibration.suggest_score, 4),
            "target_precision": calibration.target,
        },
        "calibration": calibration.to_dict(),
        "entries": len(index),
        "variants": index.variant_count,
        "answer_threshold": answer_t,
        "suggest_threshold": suggest_t,
        "counts": {"in_scope_accuracy": (right, in_scope), "oos_recall": (oos_caught, oos),
                   "oos_precision": (oos_caught, unrecognised),
                   "suggest_rate": (suggested, len(cases)),
                   "top1_accuracy": (top1, in_scope),
                   "answer_precision": (answered_right, answered),
                   "coverage": (answered_right, in_scope),
                   "suggest_precision": (suggest_hit, suggested)},
    }


#: Out-of-scope recalls the trade-off curve is read at.
CURVE_RECALLS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95)


def oos_curve(tops: list[tuple[bool, bool, float]]) -> list[dict[str, float]]:
    """In-scope accuracy against out-of-scope recall as the suggest threshold
    moves (the answer threshold left where it is): for each recall of
    ``CURVE_RECALLS``, the best in-scope accuracy of a threshold that reaches
    it. ``tops``: per case (in scope?, top candidate right?, its score).

    Why: the two goals pull against each other, and one operating point hides
    whether a miss is the threshold's (another point on the curve meets both)
    or the score's (no point does: the signal itself must improve). Empty
    without out-of-scope cases or without in-scope ones.
    """
    ins = np.asarray([s for is_in, _, s in tops if is_in])
    ok = np.asarray([r for is_in, r, _ in tops if is_in], dtype=bool)
    oos = np.sort(np.asarray([s for is_in, _, s in tops if not is_in]))
    if not ins.size or not oos.size:
        return []
    points = []
    for recall in CURVE_RECALLS:
        # The lowest threshold that declares this share of them unrecognised:
        # a question below it is unrecognised (``decide``).
        k = int(np.ceil(recall * oos.size - 1e-9))
        threshold = float(oos[k - 1]) + 1e-9 if k > 0 else 0.0
        point = {"oos_recall": float((oos < threshold).mean()),
                 "in_scope_accuracy": float((ok & (ins >= threshold)).mean()),
                 "suggest_threshold": threshold}
        if not points or point["oos_recall"] != points[-1]["oos_recall"]:
            points.append(point)  # few OOS cases: two recalls may need the same cut
    return points


def format_report(result: dict[str, Any]) -> str:
    """The metrics as aligned lines for people (from evaluate or evaluate_details).

    Ratios get three decimals and, from ``evaluate_details``, the counts they
    come from: "90.0 %" hid whether 0.90 was met (0.8997 printed as 90.0 %).
    A ratio with no denominator prints "null" (it is JSON's null too).
    """
    counts = result.get("counts", {})

    def ratio(key: str) -> str:
        value = result.get(key)
        if value is None:
            return "null"
        if key in counts:
            hits, total = counts[key]
            return f"{value:.3f}  ({hits:,} of {total:,})"
        return f"{value:.3f}"

    thresholds = result.get("thresholds") or {}
    calibration = result.get("calibration") or {}
    if thresholds.get("calibrated"):
        calibrated = (f"calibrated on the KB for precision {thresholds['target_precision']}: "
                      f"raw score >= {thresholds['raw_answer_score']} with margin >= "
                      f"{thresholds['raw_answer_margin']} answers, >= "
                      f"{thresholds['raw_suggest_score']} suggests")
    else:
        calibrated = f"default scale ({calibration.get('reason') or 'not calibrated'})"
    return "\n".join([
        f"cases               {result['n']:,}",
        *([f"knowledge base      {result['entries']:,} entries, {result['variants']:,} questions"]
          if "entries" in result else []),
        f"in-scope accuracy   {ratio('in_scope_accuracy')}",
        f"top-1 accuracy      {ratio('top1_accuracy')}",
        f"answer precision    {ratio('answer_precision')}",
        f"coverage            {ratio('coverage')}",
        f"suggest precision   {ratio('suggest_precision')}",
        f"out-of-scope recall {ratio('oos_recall')}",
        f"out-of-scope prec.  {ratio('oos_precision')}",
        f"suggest rate        {ratio('suggest_rate')}",
        f"latency p50 / p99   {result['p50_ms']:.2f} ms / {result['p99_ms']:.2f} ms",
        *([f"CPU p50 / p99       {result['cpu_p50_ms']:.2f} ms / {result['cpu_p99_ms']:.2f} ms"
           " per question"] if "cpu_p50_ms" in result else []),
        f"index build         {result['build_s']:.2f} s",
        f"thresholds          answer {result.get('answer_threshold', DEFAULT_ANSWER_THRESHOLD)}, "
        f"suggest {result.get('suggest_threshold', DEFAULT_SUGGEST_THRESHOLD)}",
        f"calibration         {calibrated}",
        *(["in scope vs OOS     " + ", ".join(dict.fromkeys(  # a few cases: points repeat
            f"{p['in_scope_accuracy']:.3f} at recall {p['oos_recall']:.2f}"
            for p in result["oos_curve"])) + "  (suggest threshold moved)"]
          if result.get("oos_curve") else []),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kb", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(evaluate(args.kb, args.cases), ensure_ascii=False))
    else:
        print(format_report(evaluate_details(args.kb, args.cases)))


if __name__ == "__main__":
    main()

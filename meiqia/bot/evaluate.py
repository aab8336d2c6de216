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
from pathlib import Path
from typing import Any

import numpy as np

from meiqia.bot.index import DEFAULT_ANSWER_THRESHOLD
from meiqia.bot.index import DEFAULT_SUGGEST_THRESHOLD
from meiqia.bot.index import KBIndex
from meiqia.bot.kbfile import decode
from meiqia.bot.kbfile import load_kb


def read_cases(path: str | Path) -> list[tuple[str, str]]:
    text = decode(Path(path).read_bytes(), str(path))
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"query", "expected_id"} <= set(reader.fieldnames):
        raise ValueError(f"{path}: the header needs the columns query,expected_id")
    return [((row["query"] or "").strip(), (row["expected_id"] or "").strip()) for row in reader]


#: The keys of DESIGN §6, in order: ``evaluate`` returns exactly these.
METRICS = ("n", "in_scope_accuracy", "oos_recall", "oos_precision", "suggest_rate",
           "p50_ms", "p99_ms", "build_s")


def evaluate(
    kb_path: str | Path,
    cases_path: str | Path,
    answer_threshold: float | None = None,
    suggest_threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Build an index from ``kb_path``, answer every case, return the metrics of
    DESIGN §6 (exactly ``METRICS``; ratios are None when they have no denominator).
    ``progress(done, total)`` is called every 500 cases."""
    details = evaluate_details(kb_path, cases_path, answer_threshold, suggest_threshold,
                               progress)
    return {key: details[key] for key in METRICS}


def evaluate_details(
    kb_path: str | Path,
    cases_path: str | Path,
    answer_threshold: float | None = None,
    suggest_threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """``evaluate`` plus the KB size, the counts behind each ratio and the
    thresholds used, for the report.

    Ratios are exact (not rounded): whether a goal such as 0.90 is met must
    not depend on how the number was printed.
    """
    answer_t = DEFAULT_ANSWER_THRESHOLD if answer_threshold is None else answer_threshold
    suggest_t = DEFAULT_SUGGEST_THRESHOLD if suggest_threshold is None else suggest_threshold
    entries = load_kb(kb_path)
    cases = read_cases(cases_path)
    started = time.perf_counter()
    index = KBIndex(entries)
    build_s = time.perf_counter() - started
    latencies = []
    in_scope = right = oos = oos_caught = unrecognised = suggested = 0
    for n, (query, expected) in enumerate(cases, start=1):
        t0 = time.perf_counter()
        decision = index.decide(index.query(query, k=3), answer_t, suggest_t)
        latencies.append((time.perf_counter() - t0) * 1000)
        top = decision.candidates[0].entry_id if decision.candidates else None
        if decision.kind == "unrecognised":
            unrecognised += 1
        if decision.kind == "suggest":
            suggested += 1
        if expected:
            in_scope += 1
            right += int(decision.kind != "unrecognised" and top == expected)
        else:
            oos += 1
            oos_caught += int(decision.kind == "unrecognised")
        if progress is not None and n % 500 == 0:
            progress(n, len(cases))
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {
        "n": len(cases),
        "in_scope_accuracy": right / in_scope if in_scope else None,
        "oos_recall": oos_caught / oos if oos else None,
        "oos_precision": oos_caught / unrecognised if unrecognised else None,
        "suggest_rate": suggested / len(cases) if cases else 0.0,
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "build_s": round(build_s, 3),
        "entries": len(index),
        "variants": index.variant_count,
        "answer_threshold": answer_t,
        "suggest_threshold": suggest_t,
        "counts": {"in_scope_accuracy": (right, in_scope), "oos_recall": (oos_caught, oos),
                   "oos_precision": (oos_caught, unrecognised),
                   "suggest_rate": (suggested, len(cases))},
    }


def format_report(result: dict[str, Any]) -> str:
    """The metrics as aligned lines for people (from evaluate or evaluate_details).

    Ratios get three decimals and, from ``evaluate_details``, the counts they
    come from: "90.0 %" hid whether 0.90 was met (0.8997 printed as 90.0 %).
    """
    counts = result.get("counts", {})

    def ratio(key: str) -> str:
        value = result[key]
        if value is None:
            return "n/a"
        if key in counts:
            hits, total = counts[key]
            return f"{value:.3f}  ({hits:,} of {total:,})"
        return f"{value:.3f}"

    return "\n".join([
        f"cases               {result['n']:,}",
        *([f"knowledge base      {result['entries']:,} entries, {result['variants']:,} questions"]
          if "entries" in result else []),
        f"in-scope accuracy   {ratio('in_scope_accuracy')}",
        f"out-of-scope recall {ratio('oos_recall')}",
        f"out-of-scope prec.  {ratio('oos_precision')}",
        f"suggest rate        {ratio('suggest_rate')}",
        f"latency p50 / p99   {result['p50_ms']:.2f} ms / {result['p99_ms']:.2f} ms",
        f"index build         {result['build_s']:.2f} s",
        f"thresholds          answer {result.get('answer_threshold', DEFAULT_ANSWER_THRESHOLD)}, "
        f"suggest {result.get('suggest_threshold', DEFAULT_SUGGEST_THRESHOLD)}",
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

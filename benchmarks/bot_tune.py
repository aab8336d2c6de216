"""Fit the bot's score weights on development data only (docs/bot.md).

Two logistic models "is this candidate the right answer" over the candidate
features of ``meiqia.bot.index.FEATURES``:

- ``WEIGHTS_CLF`` (indexes with the entry classifier): CLINC150 *training*
  data, every 8th variant of each entry held out as an in-scope question, the
  index built on the rest, plus the 100 out-of-scope questions of
  ``oos_train.csv`` (weighted x5).
- ``WEIGHTS_PLAIN_ZH`` (no classifier: few variants per entry, the usual FAQ;
  questions with Chinese characters): the zh_faq development cases (LCQMC
  dev) against their KB;
- ``WEIGHTS_PLAIN`` (no classifier, questions without Chinese): the same
  CLINC150 tuning questions against a plain index. One model for both
  languages cost the Chinese 0.01-0.02 of top-1: word evidence weighs
  differently where words are cut by a segmenter.

The zh figure it prints is cross-fitted (fit on one half of the cases, top-1
measured on the other half, both ways), so it is not an in-sample number.
Thresholds are no longer fitted here: every index calibrates its own
(``meiqia.bot.calibrate``). No test split is read.

Run: ``nice -n 10 .venv/bin/python benchmarks/bot_tune.py`` (about a minute;
prints the constants to paste into meiqia/bot/index.py).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meiqia.bot import index as bot_index  # noqa: E402
from meiqia.bot.evaluate import read_cases  # noqa: E402
from meiqia.bot.kbfile import KBEntry  # noqa: E402
from meiqia.bot.kbfile import load_kb  # noqa: E402

#: ../shared/data beside the checkout (a worktree under wt/ looks one level up).
DATA = next((p / "shared" / "data" for p in Path(__file__).resolve().parents[2:4]
             if (p / "shared" / "data").is_dir()),
            Path(__file__).resolve().parents[2] / "shared" / "data")
HOLD_EVERY = 8
C = 3.0


def clinc_split() -> tuple[list[KBEntry], list[tuple[str, str]]]:
    entries = load_kb(DATA / "clinc150" / "kb_train.csv")
    train, held = [], []
    for entry in entries:
        keep = []
        for i, question in enumerate(entry.questions):
            (held.append((question, entry.id)) if i % HOLD_EVERY == 3 else keep.append(question))
        train.append(KBEntry(entry.id, keep, entry.answer))
    with open(DATA / "clinc150" / "oos_train.csv", encoding="utf-8") as fh:
        held += [(row["query"], "") for row in csv.DictReader(fh)]
    return train, held


def collect(index: bot_index.KBIndex, cases: list[tuple[str, str]], k: int = 8):
    X, y, groups = [], [], []
    for n, (query, expected) in enumerate(cases):
        for cand in index.query(query, k=k):
            X.append([cand.features[f] for f in bot_index.FEATURES])
            y.append(1 if cand.entry_id == expected else 0)
            groups.append(n)
    return np.asarray(X), np.asarray(y), np.asarray(groups)


def fit(X, y, weight) -> dict[str, float]:
    model = LogisticRegression(C=C, max_iter=5000).fit(X, y, sample_weight=weight)
    weights = {"bias": round(float(model.intercept_[0]), 3)}
    weights.update({f: round(float(w), 3)
                    for f, w in zip(bot_index.FEATURES, model.coef_[0], strict=True)
                    if round(float(w), 3) != 0.0})
    return weights


def top1(X, y, groups, mask, weights) -> float:
    w = np.asarray([weights.get(f, 0.0) for f in bot_index.FEATURES])
    scores = X @ w
    right = total = 0
    for n in np.flatnonzero(mask):
        rows = np.flatnonzero(groups == n)
        total += 1
        right += bool(len(rows)) and bool(y[rows[np.argmax(scores[rows])]])
    return right / total if total else float("nan")


def main() -> None:
    train, clinc_cases = clinc_split()
    oos = {n for n, c in enumerate(clinc_cases) if not c[1]}
    index = bot_index.KBIndex(train, use_classifier=True)
    X, y, groups = collect(index, clinc_cases)
    weight = np.where(np.isin(groups, list(oos)), 5.0, 1.0)
    print(f"WEIGHTS_CLF = {fit(X, y, weight)}")

    plain = bot_index.KBIndex(train, use_classifier=False)
    Xc, yc, gc = collect(plain, clinc_cases)
    wc = np.where(np.isin(gc, list(oos)), 5.0, 1.0)
    zh_kb = load_kb(DATA / "zh_faq" / "lcqmc_dev_kb.csv")
    zh_cases = read_cases(DATA / "zh_faq" / "lcqmc_dev_cases.csv")
    Xz, yz, gz = collect(bot_index.KBIndex(zh_kb), zh_cases)
    in_scope = np.asarray([bool(e) for _, e in zh_cases])
    halves = np.arange(len(zh_cases)) % 2 == 1
    for name, half in (("odd", halves), ("even", ~halves)):
        rows = np.isin(gz, np.flatnonzero(half))
        weights = fit(Xz[rows], yz[rows], np.ones(int(rows.sum())))
        print(f"  zh top-1 fitted on the {name} half, measured on the other: "
              f"{top1(Xz, yz, gz, ~half & in_scope, weights):.3f}")
    print(f"WEIGHTS_PLAIN_ZH = {fit(Xz, yz, np.ones(len(yz)))}")
    print(f"WEIGHTS_PLAIN = {fit(Xc, yc, wc)}")


if __name__ == "__main__":
    main()

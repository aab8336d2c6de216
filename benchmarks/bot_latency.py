"""Bot latency and build time at 10,000 and 100,000 question variants, and memory.

The KB is synthesised from CLINC150's 15,000 training questions: each copy of
an intent becomes a new entry whose questions get a distinct suffix word, so
entries stay distinguishable. Queries are CLINC150 validation questions.
Beside meiqia: a plain TF-IDF nearest neighbour and a full rapidfuzz scan.

Run: ``.venv/bin/python benchmarks/bot_latency.py`` (a few minutes).
"""

from __future__ import annotations

import csv
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]

CHILD = r'''
import csv, json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from meiqia.bot.index import KBIndex
from meiqia.bot.kbfile import KBEntry, load_kb
from meiqia.bot.normalize import normalize
target, mode = int(sys.argv[1]), sys.argv[2]
base = load_kb(sys.argv[4])
entries, n, copy = [], 0, 0
WORDS = sys.argv[6].split(",")
while n < target:
    for e in base:
        if n >= target:
            break
        tag = WORDS[copy % len(WORDS)] + str(copy // len(WORDS))
        qs = [q + " " + tag for q in e.questions][: target - n]
        entries.append(KBEntry(f"{e.id}-{copy}", qs, e.answer))
        n += len(qs)
    copy += 1
queries = [r["query"] for r in csv.DictReader(open(sys.argv[5]))][:1000]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "meiqia":
    index = KBIndex(entries)
    ask = lambda q: index.query(q, k=3)
elif mode == "tfidf":
    from sklearn.feature_extraction.text import TfidfVectorizer
    texts = [normalize(q) for e in entries for q in e.questions]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    m = vec.fit_transform(texts)
    ask = lambda q: int(np.argmax((m @ vec.transform([normalize(q)]).T).toarray()))
else:
    from rapidfuzz import fuzz, process
    texts = [normalize(q) for e in entries for q in e.questions]
    ask = lambda q: process.extractOne(normalize(q), texts, scorer=fuzz.WRatio)
    queries = queries[:200]
build = time.perf_counter() - t0
lat = []
for q in queries:
    t = time.perf_counter(); ask(q); lat.append((time.perf_counter() - t) * 1000)
edit_ms = None
if mode == "meiqia":
    e = entries[len(entries) // 2]
    t = time.perf_counter()
    index.upsert(KBEntry(e.id, e.questions + ["a brand new wording"], e.answer))
    index.remove(entries[0].id)
    edit_ms = (time.perf_counter() - t) * 1000 / 2
    assert index.query("a brand new wording", k=1)[0].entry_id == e.id
    index.wait_rebuilt()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"edit_ms": edit_ms, "variants": n, "entries": len(entries), "build_s": build, "p50": float(np.percentile(lat, 50)),
                  "p99": float(np.percentile(lat, 99)), "rss_mb": rss / 1024,
                  "index_mb": (rss - before) / 1024, "queries": len(queries)}))
'''


def run(target: int, mode: str) -> dict:
    import json

    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), mode,
         str(Path(__file__).resolve().parent.parent), str(DATA / "kb_train.csv"),
         str(DATA / "cases_val.csv"), ",".join(WORDS)],
        capture_output=True, text=True, check=True, timeout=1800,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    lines = ["| variants | entries | method | build s | p50 ms | p99 ms | edit ms | peak RSS MB | index MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for target in (10_000, 100_000):
        for mode, name in (("meiqia", "**meiqia**"), ("tfidf", "plain TF-IDF NN"),
                           ("fuzz", "full rapidfuzz scan")):
            fig = run(target, mode)
            print(target, mode, fig, flush=True)
            lines.append(f"| {fig['variants']:,} | {fig['entries']:,} | {name} | {fig['build_s']:.2f} | "
                         f"{fig['p50']:.2f} | {fig['p99']:.2f} | "
                         f"{'—' if fig['edit_ms'] is None else format(fig['edit_ms'], '.0f')} | "
                         f"{fig['rss_mb']:.0f} | "
                         f"{fig['index_mb']:.0f} |")
    body = (
        "Goals: p50 < 2 ms and p99 < 10 ms per question at 10,000 variants; p99 < 25 ms "
        "and build < 10 s at 100,000. Each figure is a separate process; peak RSS "
        "includes Python and the libraries, index MB is the growth while building. "
        "meiqia trains its entry classifier only up to 1,000 entries and 30,000 "
        "variants, so the 100,000-variant KB runs on retrieval, rapidfuzz and the "
        "calibrated score alone (trained, it took 614 s and 1.3 GB). The rapidfuzz "
        "scan is timed on 200 queries. Edit ms: one upsert and one remove, averaged, "
        "until the edit is visible to queries; above 2,000 variants an edit is patched in "
        "(the changed entry's rows and classifier column only) and the full refit runs "
        "in a background thread (peak RSS includes that refit).\n\n"
        + "\n".join(lines)
    )
    write_section("bot-latency", "Bot latency, build time and memory",
                  ".venv/bin/python benchmarks/bot_latency.py", body)


if __name__ == "__main__":
    _ = (csv, resource, time, np)
    main()

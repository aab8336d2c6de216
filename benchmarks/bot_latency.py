"""Bot latency and build time at 10,000 and 100,000 question variants, and memory.

The KB is synthesised from CLINC150's 15,000 training questions: each copy of
an intent becomes a new entry whose questions get a distinct suffix word, so
entries stay distinguishable. Queries are CLINC150 validation questions.
Beside meiqia: a plain TF-IDF nearest neighbour and a full rapidfuzz scan.

Also the edit-to-answer latency on the demo KB through the app: an entry edited
with PATCH /api/v1/knowledge/<id>, then the next POST /api/v1/bot/ask, in the
editing process and in a second app on the same database (another process's
view, which checks the KB version every ``CHECK_SECONDS``).

Run: ``nice -n 15 .venv/bin/python benchmarks/bot_latency.py`` (a few minutes; ``--no-report``
prints the figures without writing docs/benchmarks.md).
"""

from __future__ import annotations

import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import write_section  # noqa: E402

#: ../shared/data beside the checkout (a worktree under wt/ looks one level up).
DATA = next((p / "shared" / "data" for p in Path(__file__).resolve().parents[2:4]
             if (p / "shared" / "data").is_dir()),
            Path(__file__).resolve().parents[2] / "shared" / "data") / "clinc150"
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
def resident():
    import gc
    gc.collect()
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
resident_before = resident()
if mode == "meiqia-float":  # the embedding model's shipped float graph
    from meiqia.bot import semantic
    semantic.configure(True, "", False)
t0 = time.perf_counter()
if mode.startswith("meiqia"):
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
resident_mb = (resident() - resident_before) / 2**20
lat, cpu = [], []
for q in queries:
    t, c = time.perf_counter(), time.thread_time(); ask(q)
    cpu.append((time.thread_time() - c) * 1000); lat.append((time.perf_counter() - t) * 1000)
edit_ms = None
if mode.startswith("meiqia"):
    e = entries[len(entries) // 2]
    t = time.perf_counter()
    index.upsert(KBEntry(e.id, e.questions + ["a brand new wording"], e.answer))
    index.remove(entries[0].id)
    edit_ms = (time.perf_counter() - t) * 1000 / 2
    assert index.query("a brand new wording", k=1)[0].entry_id == e.id
    index.wait_rebuilt()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"edit_ms": edit_ms, "variants": n, "entries": len(entries), "build_s": build, "p50": float(np.percentile(lat, 50)),
                  "p99": float(np.percentile(lat, 99)),
                  "cpu_p50": float(np.percentile(cpu, 50)), "cpu_p99": float(np.percentile(cpu, 99)),
                  "first_ms": lat[0], "max_ms": max(lat), "rss_mb": rss / 1024,
                  "index_mb": (rss - before) / 1024, "resident_mb": resident_mb,
                  "queries": len(queries)}))
'''


EDIT_CHILD = r'''
import io, json, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from meiqia import create_app, migrations
from meiqia.db import database
from meiqia.models import KnowledgeEntry
from meiqia.services import knowledge
from tests.helpers import ApiClient

tmp = Path(tempfile.mkdtemp())
url = f"sqlite:///{tmp}/bench.sqlite3"
def app(name):
    made = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url, "REDIS_URL": "",
                       "JOBS_INLINE": True}, instance_path=str(tmp / name))
    with made.app_context():
        migrations.upgrade(database.obj)
    return made
first = app("first")
ctx = first.app_context(); ctx.push()
api = ApiClient.registered(first)
kb = Path(sys.argv[1]) / "knowledge_base" / "shop.zh-CN.yaml"
api.post("/api/v1/knowledge/import", data={"file": (io.BytesIO(kb.read_bytes()), kb.name)},
         content_type="multipart/form-data")
team_id = api.team["id"]
entry = KnowledgeEntry.get(KnowledgeEntry.key == "return-shipping-fee")
question = "退货运费谁出"
def ask():
    return api.post("/api/v1/bot/ask", json={"question": question}).get_json()["candidates"][0]
ask()  # the first question builds the index
second = app("second")
with second.app_context():
    other = knowledge.index_for(team_id)
same, edit, remote = [], [], []
for n in range(30):
    answer = f"运费由我们承担（第 {n} 版）。"
    t0 = time.perf_counter()
    api.patch(f"/api/v1/knowledge/{entry.id}", json={"answer": answer})
    t1 = time.perf_counter()
    got = ask()["answer"]
    t2 = time.perf_counter()
    assert got == answer, got  # the very next ask
    edit.append((t1 - t0) * 1000)
    same.append((t2 - t0) * 1000)
    with second.app_context():
        while knowledge.index_for(team_id).query(question, k=1)[0].answer != answer:
            time.sleep(0.005)
    remote.append((time.perf_counter() - t1) * 1000)
print(json.dumps({"entries": len(knowledge.index_for(team_id)),
                  "edit_ms": statistics.median(edit),
                  "same_ms": statistics.median(same), "same_max_ms": max(same),
                  "other_ms": statistics.median(remote), "other_max_ms": max(remote)}))
'''


def edit_to_answer() -> dict:
    """Edit-to-answer latency on the demo KB through the API (a separate process)."""
    import json

    out = subprocess.run([sys.executable, "-c", EDIT_CHILD,
                          str(Path(__file__).resolve().parent.parent)],
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(target: int, mode: str, cache: str) -> dict:
    import json

    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), mode,
         str(Path(__file__).resolve().parent.parent), str(DATA / "kb_train.csv"),
         str(DATA / "cases_val.csv"), ",".join(WORDS)],
        capture_output=True, text=True, check=True, timeout=1800,
        env={**os.environ, "MEIQIA_CACHE_DIR": cache},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-report", action="store_true",
                        help="print the figures, leave docs/benchmarks.md alone")
    report = not parser.parse_args().no_report
    lines = ["| variants | entries | method | build s | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms "
             "| first query ms | edit ms | peak RSS MB | index MB (peak) | index MB (resident) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    load_start = os.getloadavg()[0]
    # A cache folder of this run's own: the first process embeds every question
    # (no vectors kept from an earlier run); the int8 graph is made here first,
    # so no build below includes making it.
    # In a process of its own: a child's peak RSS starts from its parent's, so
    # this one never loads the model.
    cache = tempfile.mkdtemp(prefix="meiqia-bench-cache-")
    os.environ["MEIQIA_CACHE_DIR"] = cache
    subprocess.run([sys.executable, "-c", "from meiqia.bot import semantic; "
                    "assert semantic.encoder().graph == 'int8'"],
                   cwd=Path(__file__).resolve().parent.parent, check=True, timeout=600)
    for target in (10_000, 100_000):
        more = (("meiqia", "meiqia, a second process (the questions' vectors on disk)"),
                ("meiqia-float", "meiqia, model's float graph (`BOT_EMBEDDING_INT8 = "
                 "False`)")) if target == 10_000 else ()
        for mode, name in (("meiqia", "**meiqia**"), *more, ("tfidf", "plain TF-IDF NN"),
                           ("fuzz", "full rapidfuzz scan")):
            fig = run(target, mode, cache)
            print(target, mode, fig, flush=True)
            lines.append(f"| {fig['variants']:,} | {fig['entries']:,} | {name} | {fig['build_s']:.2f} | "
                         f"{fig['p50']:.2f} | {fig['p99']:.2f} | {fig['cpu_p50']:.2f} | "
                         f"{fig['cpu_p99']:.2f} | {fig['first_ms']:.2f} | "
                         f"{'—' if fig['edit_ms'] is None else format(fig['edit_ms'], '.0f')} | "
                         f"{fig['rss_mb']:.0f} | "
                         f"{fig['index_mb']:.0f} | {fig['resident_mb']:.0f} |")
    edit = edit_to_answer()
    print("edit to answer", edit, flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    lines += [
        "", f"Edit to answer on the demo KB ({edit['entries']} entries, SQLite, 30 edits, "
        "median / worst): PATCH /api/v1/knowledge/<id> returns in "
        f"{edit['edit_ms']:.0f} ms, and the very next POST /api/v1/bot/ask, in the same "
        f"process, answers with the edit: {edit['same_ms']:.0f} / {edit['same_max_ms']:.0f} ms "
        "from the start of the edit. Another process (a second app on the database, checking "
        f"the KB version every 0.5 s) answers with it {edit['other_ms']:.0f} / "
        f"{edit['other_max_ms']:.0f} ms after the edit returned.",
    ]
    body = (
        "Goals: p50 < 2 ms and p99 < 5 ms per question at 10,000 variants (issue 20); "
        "p99 < 25 ms and build < 10 s at 100,000. p50 / p99 ms are wall-clock times of "
        "1,000 queries in a row; CPU p50 / p99 ms the same queries' CPU time (the "
        "querying thread's, ``time.thread_time``): on a shared machine a query waits "
        "for a core as long as the others' load makes it, and only the CPU time is "
        "the bot's own (docs/bot.md, \"Where the latency tail comes from\"). First "
        "query ms: the first question after the build (the index warms up at build). "
        "Each figure is a separate process; peak RSS "
        "includes Python and the libraries; index MB (peak) is the growth of the peak "
        "over the whole run (build, queries, two edits and the background refit they start, "
        "while the old index keeps answering); index MB (resident) is what the built index "
        "holds (resident set after the build, garbage collected, minus before). "
        "meiqia trains its entry classifier only up to 1,000 entries and 30,000 "
        "variants, so the 100,000-variant KB runs on retrieval, rapidfuzz and the "
        "calibrated score alone (trained, it took 614 s and 1.3 GB), and without "
        "sentence embeddings. The 10,000-variant KB is English and trains the classifier, "
        "so it also uses the sentence-embedding model (docs/bot.md, \"Sentence "
        "embeddings\"): its build embeds every question, each query embeds the question "
        "(most of its CPU time), and its resident MB include the loaded model. The model "
        "runs as int8 matrix products (a graph made once from the shipped file and kept "
        "in the cache folder); the row \"model's float graph\" is the same index with "
        "the file's graph as shipped, which onnxruntime runs in float32, in the same run. "
        "Each run has a cache folder of its own, so the first process embeds every "
        "question; the row \"a second process\" is the same build again, as a worker "
        "that starts after another: it reads the questions' vectors from the disk "
        "(docs/bot.md, \"Vectors on disk\"). "
        "The rapidfuzz "
        "scan is timed on 200 queries. Edit ms: one upsert and one remove, averaged, "
        "until the edit is visible to queries; above 2,000 variants an edit is patched in "
        "(the changed entry's rows and classifier column only) and the full refit runs "
        "in a background thread (peak RSS includes that refit).\n\n"
        + f"Load average when the run started: {load_start:.1f}, when it ended: "
        f"{os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores (timings of every method stretch alike when the machine "
        "is shared; compare them within a run).\n\n"
        + "\n".join(lines)
    )
    if report:
        write_section("bot-latency", "Bot latency, build time and memory",
                      "nice -n 15 .venv/bin/python benchmarks/bot_latency.py", body)
    else:
        print(body)


if __name__ == "__main__":
    _ = (csv, resource, time, np)
    main()

"""History at scale: 100,000 ended conversations, 1,000,000 messages.

Generates the data (Chinese and English messages, 20 agents, leads, ratings)
straight into a fresh database through the models' tables, then measures with
the real services, each beside a naive query in the same run:

- a filtered, paginated history page (agent + 30 days + rating), p95;
- content search for Chinese substrings (1, 2 and 4 characters), p95, beside a
  LIKE scan;
- the 30-day dashboard from stored figures vs. recomputing from messages;
- exports with content of exactly 5,000 and 20,000 conversations (the newest,
  selected by an end-time bound), CSV and XLSX, each in a child process of its
  own: time and peak memory, and the child's memory before the export, so that
  "memory stays flat" is the two sizes side by side.

Run: ``.venv/bin/python benchmarks/history_bench.py [--postgres] [--conversations N]
[--no-write]`` (``--no-write``: print the figures, leave docs/benchmarks.md alone).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402

ZH = ["退款还没到账", "发票怎么开", "快递到哪了", "可以换货吗", "优惠券用不了", "会员积分",
      "尺码偏大吗", "我的订单号是 20261124", "地址填错了", "谢谢，已经收到"]
EN = ["where is my parcel", "refund please", "wrong size", "thank you", "change address",
      "coupon not working", "invoice for my company", "is it genuine"]
AGENT_LINES = ["您好，马上为您查询", "已为您处理", "请提供订单号", "Sure, let me check",
               "Done, anything else?"]


def generate(app, n_conv: int, per_conv: int) -> dict:
    from meiqia.db import database
    from meiqia.models import Agent
    from meiqia.models import Conversation
    from meiqia.models import Message
    from meiqia.models import Team
    from meiqia.models import Visit
    from meiqia.models import Visitor
    from meiqia.services.figures import compute_figures

    rnd = random.Random(7)
    with app.app_context():
        team = Team.create(name="bench", timezone="Asia/Shanghai")
        agents = [Agent.create(team=team, email=f"b{i}@x.cn", name=f"客服{i}",
                               password_hash="x", role="admin" if i == 0 else "agent",
                               scope="all" if i == 0 else "self") for i in range(20)]
        now = datetime.datetime(2026, 11, 24)
        t0 = time.perf_counter()
        msg_id = 0
        batch = 2000
        # Distinct end times (whole seconds over 90 days), so "the newest N" is a
        # time bound that selects exactly N conversations.
        offsets = rnd.sample(range(90 * 24 * 3600), n_conv)
        for start in range(0, n_conv, batch):
            with database.atomic():
                visitors = [{"team": team.id, "uid": uuid.uuid4().hex,
                             "name": f"访客{start + i}", "phone": f"13{rnd.randrange(10**9):09d}"}
                            for i in range(min(batch, n_conv - start))]
                Visitor.insert_many(visitors).execute()
                vids = [v.id for v in Visitor.select(Visitor.id).order_by(
                    Visitor.id.desc()).limit(len(visitors))][::-1]
                Visit.insert_many([{"visitor": v, "team": team.id, "ip": "114.114.114.114",
                                    "region": "江苏 南京",
                                    "source": rnd.choice(["direct", "link", "search_engine"]),
                                    "platform": rnd.choice(["pc_web", "mobile_web"])}
                                   for v in vids]).execute()
                visit_ids = {v.visitor_id: v.id for v in Visit.select().where(
                    Visit.visitor.in_(vids))}
                convs, msgs_by_conv = [], []
                for n, v in enumerate(vids):
                    ended = now - datetime.timedelta(seconds=offsets[start + n])
                    started = ended - datetime.timedelta(minutes=20)
                    handler = rnd.choice(agents).id
                    msgs = []
                    for k in range(per_conv):
                        kind = "visitor" if k % 2 == 0 else "agent"
                        body = rnd.choice(ZH + EN) if kind == "visitor" else rnd.choice(AGENT_LINES)
                        msgs.append({"sender_kind": kind, "body": body, "visibility": "public",
                                     "kind": "text",
                                     "created_at": started + datetime.timedelta(seconds=30 * k)})
                    fig = compute_figures([type("M", (), m) for m in msgs], [])
                    convs.append({"team": team.id, "visitor": v, "visit": visit_ids[v],
                                  "status": "ended", "handler": handler, "created_at": started,
                                  "ended_at": ended,
                                  "rating": rnd.choice([None, "good", "neutral", "bad"]), **fig})
                    msgs_by_conv.append(msgs)
                Conversation.insert_many(convs).execute()
                cids = [c.id for c in Conversation.select(Conversation.id).order_by(
                    Conversation.id.desc()).limit(len(convs))][::-1]
                rows = []
                for cid, msgs in zip(cids, msgs_by_conv, strict=True):
                    for m in msgs:
                        msg_id += 1
                        rows.append({"conversation": cid, **m})
                for i in range(0, len(rows), 5000):
                    Message.insert_many(rows[i:i + 5000]).execute()
            print(f"  {start + len(visitors):,} conversations", flush=True)
        return {"seconds": time.perf_counter() - t0, "admin_id": agents[0].id,
                "agent_id": agents[1].id, "messages": msg_id}


def p95(fn, n: int = 40) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[int(len(times) * 0.95) - 1]


def measure(app, ids: dict) -> dict:
    import peewee

    from meiqia.models import Agent
    from meiqia.models import Conversation
    from meiqia.models import Message
    from meiqia.services import dashboard
    from meiqia.services import history

    out = {}
    with app.app_context():
        admin = Agent.get_by_id(ids["admin_id"])
        agent = Agent.get_by_id(ids["agent_id"])
        filters = {"agent_id": agent.id, "ended_from": "2026-10-25", "rating": "good"}
        out["page"] = p95(lambda: history.search(admin, filters, page=2))
        naive_since = datetime.datetime(2026, 10, 24, 16)

        def naive_page():
            q = Conversation.select().where(Conversation.handler == agent.id,
                                            Conversation.rating == "good",
                                            Conversation.ended_at >= naive_since)
            q.count()
            list(q.order_by(Conversation.ended_at.desc()).paginate(2, 20))
        out["page_naive"] = p95(naive_page)  # same query without joins, for scale
        for term in ("退", "退款", "地址填错"):
            out[f"search_{term}"] = p95(lambda t=term: history.search(admin, {"content": t}), 10)
            out[f"search_{term}_naive"] = p95(lambda t=term: (
                Conversation.select().where(Conversation.id.in_(
                    Message.select(Message.conversation).where(Message.body ** f"%{t}%")))
                .count()), 5)
        start, end = datetime.date(2026, 10, 25), datetime.date(2026, 11, 23)
        out["dashboard"] = p95(lambda: dashboard.figures(admin, start, end), 10)

        def naive_dashboard():
            # Recompute first responses from the messages, as if nothing were stored.
            rows = (Message.select(Message.conversation, Message.sender_kind,
                                   peewee.fn.MIN(Message.created_at))
                    .join(Conversation)
                    .where(Conversation.ended_at >= naive_since)
                    .group_by(Message.conversation, Message.sender_kind).tuples())
            list(rows)
        out["dashboard_naive"] = p95(naive_dashboard, 3)
    return out


EXPORT_CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import xlsxwriter  # noqa: F401 - loaded before the baseline, as in a worker
from meiqia import create_app
app = create_app({"SECRET_KEY": "b", "DATABASE_URL": sys.argv[2], "JOBS_INLINE": True},
                 instance_path=sys.argv[3])
with app.app_context():
    from meiqia.models import Agent
    from meiqia.services import exports
    admin = Agent.get_by_id(int(sys.argv[4]))
    admin.team  # the app, the models and a connection loaded: the baseline

    def status(key):  # kB -> MB, from /proc/self/status
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

    baseline = status("VmRSS")
    try:  # reset the peak to now (Linux 4.0+), so the peak below is the export's
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    t = time.perf_counter()
    export = exports.start(admin, {"filters": {"ended_from": sys.argv[5]}, "format": sys.argv[6],
                                   "with_content": True})
    took = time.perf_counter() - t
    rss = status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": export.done, "seconds": took, "peak_mb": rss,
                      "baseline_mb": baseline, "status": export.status,
                      "size_mb": export.size / 1e6}))
'''
#: Export sizes measured: the cap, and a quarter of it to show memory does not grow.
EXPORT_SIZES = (5_000, 20_000)


def newest_bound(app, n: int) -> str:
    """The end time of the n-th newest conversation, as an ``ended_from`` filter
    (end times are distinct, so exactly n conversations match)."""
    from meiqia.models import Conversation

    with app.app_context():
        (ended,) = (Conversation.select(Conversation.ended_at)
                    .order_by(Conversation.ended_at.desc()).offset(n - 1).limit(1).tuples()[0])
    return ended.isoformat() + "+00:00"


def run_export(url: str, tmp: Path, admin_id: int, bound: str, fmt: str) -> dict:
    child = subprocess.run([sys.executable, "-c", EXPORT_CHILD, str(ROOT), url,
                            str(tmp / "instance"), str(admin_id), bound, fmt],
                           capture_output=True, text=True, timeout=1800)
    if child.returncode != 0:
        return {"error": child.stderr[-500:], "rows": 0, "seconds": 0, "peak_mb": 0,
                "baseline_mb": 0, "size_mb": 0}
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-per-conversation", type=int, default=10)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-write", action="store_true",
                        help="print the figures only; leave docs/benchmarks.md as it is")
    args = parser.parse_args()
    from meiqia import create_app
    from meiqia import migrations
    from meiqia.db import database

    tmp = Path(tempfile.mkdtemp())
    db_name = None
    if args.postgres:
        import psycopg2

        db_name = f"meiqia_hbench_{uuid.uuid4().hex[:6]}"
        admin_conn = psycopg2.connect(args.pg)
        admin_conn.autocommit = True
        admin_conn.cursor().execute(f'CREATE DATABASE "{db_name}"')
        url = args.pg.rsplit("/", 1)[0] + "/" + db_name
    else:
        url = f"sqlite:///{tmp}/bench.sqlite3"
    app = create_app({"SECRET_KEY": "b", "DATABASE_URL": url, "JOBS_INLINE": True},
                     instance_path=str(tmp / "instance"))
    try:
        with app.app_context():
            migrations.upgrade(database.obj)
        print("generating…", flush=True)
        gen = generate(app, args.conversations, args.messages_per_conversation)
        if args.postgres:
            # What autovacuum does to a table after bulk inserts: statistics, and the
            # visibility map that lets index-only scans (the dashboard's) skip the rows.
            with app.app_context():
                database.execute_sql("VACUUM ANALYZE")
        fig = measure(app, gen)
        exports = {}
        for size in EXPORT_SIZES:
            bound = newest_bound(app, min(size, args.conversations))
            for fmt in ("csv", "xlsx"):
                exports[fmt, size] = run_export(url, tmp, gen["admin_id"], bound, fmt)
    finally:
        if db_name:
            app.extensions["meiqia.db"].close_all()
            admin_conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)  # the SQLite file alone is 300 MB
    print(fig, exports)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    body = "\n".join([
        f"{args.conversations:,} ended conversations and {gen['messages']:,} messages "
        f"(Chinese and English), generated in {gen['seconds']:.0f} s. Goals: history page "
        "p95 < 100 ms; content search p95 < 300 ms; 30-day dashboard < 200 ms; export of "
        "20,000 with content < 30 s and < 300 MB peak.", "",
        "| measure | meiqia | naive, same run |", "|---|---|---|",
        f"| history page (agent + 30 days + rating, page 2 with total), p95 | "
        f"{fig['page']:.1f} ms | {fig['page_naive']:.1f} ms (same filter, no joins) |",
        f"| content search `退` (1 character), p95 | {fig['search_退']:.0f} ms | "
        f"{fig['search_退_naive']:.0f} ms (LIKE scan) |",
        f"| content search `退款` (2 characters), p95 | {fig['search_退款']:.0f} ms | "
        f"{fig['search_退款_naive']:.0f} ms (LIKE scan) |",
        f"| content search `地址填错` (4 characters), p95 | {fig['search_地址填错']:.0f} ms | "
        f"{fig['search_地址填错_naive']:.0f} ms (LIKE scan) |",
        f"| dashboard, 30 days, p95 | {fig['dashboard']:.0f} ms | "
        f"{fig['dashboard_naive']:.0f} ms (first responses recomputed from messages) |",
        *(f"| export with content, {fmt.upper()}, {size:,} newest | "
          f"{e['rows']:,} rows in {e['seconds']:.1f} s, peak {e['peak_mb']:.0f} MB "
          f"(before the export {e['baseline_mb']:.0f} MB; {e['size_mb']:.1f} MB file) | — |"
          for (fmt, size), e in sorted(exports.items())),
    ])
    if any("error" in e for e in exports.values()):
        print("export failed:", [e["error"] for e in exports.values() if "error" in e])
    if args.no_write:
        print(body)
        return
    write_section(f"history-{backend.lower()}", f"History at scale on {backend}",
                  ".venv/bin/python benchmarks/history_bench.py"
                  + (" --postgres" if args.postgres else ""), body)
    _ = (os, resource)


if __name__ == "__main__":
    main()

"""History at scale: 100,000 ended conversations, 1,000,000 messages.

Generates the data (Chinese and English messages, 20 agents, leads, ratings)
straight into a fresh database through the models' tables, then measures with
the real services, each beside a naive query in the same run:

- a filtered, paginated history page (agent + 30 days + rating), p95;
- content search for Chinese substrings (2 and 4 characters), p95;
- the 30-day dashboard from stored figures vs. recomputing from messages;
- an export of 20,000 conversations with content (time and peak memory,
  measured in a child process).

Run: ``.venv/bin/python benchmarks/history_bench.py [--postgres] [--conversations N]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
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
                for v in vids:
                    ended = now - datetime.timedelta(minutes=rnd.randrange(90 * 24 * 60))
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
        for term in ("退款", "地址填错"):
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
from meiqia import create_app
app = create_app({"SECRET_KEY": "b", "DATABASE_URL": sys.argv[2], "JOBS_INLINE": True},
                 instance_path=sys.argv[3])
with app.app_context():
    from meiqia.models import Agent
    from meiqia.services import exports
    admin = Agent.get_by_id(int(sys.argv[4]))
    t = time.perf_counter()
    export = exports.start(admin, {"filters": {"ended_from": sys.argv[5]}, "format": "csv",
                                   "with_content": True})
    took = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": export.done, "seconds": took, "peak_mb": rss,
                      "status": export.status, "size_mb": export.size / 1e6}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-per-conversation", type=int, default=10)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
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
            with app.app_context():
                database.execute_sql("ANALYZE")
        fig = measure(app, gen)
        # A little under 20,000 conversations end in the last 17 days of the 90 generated.
        child = subprocess.run([sys.executable, "-c", EXPORT_CHILD, str(ROOT), url,
                                str(tmp / "instance"), str(gen["admin_id"]), "2026-11-07"],
                               capture_output=True, text=True, timeout=1800)
        export = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 \
            else {"error": child.stderr[-500:]}
    finally:
        if db_name:
            app.extensions["meiqia.db"].close_all()
            admin_conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    print(fig, export)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    body = "\n".join([
        f"{args.conversations:,} ended conversations and {gen['messages']:,} messages "
        f"(Chinese and English), generated in {gen['seconds']:.0f} s. Goals: history page "
        "p95 < 100 ms; content search p95 < 300 ms; 30-day dashboard < 200 ms; export of "
        "20,000 with content < 30 s and < 300 MB peak.", "",
        "| measure | meiqia | naive, same run |", "|---|---|---|",
        f"| history page (agent + 30 days + rating, page 2 with total), p95 | "
        f"{fig['page']:.1f} ms | {fig['page_naive']:.1f} ms (same filter, no joins) |",
        f"| content search `退款` (2 characters), p95 | {fig['search_退款']:.0f} ms | "
        f"{fig['search_退款_naive']:.0f} ms (LIKE scan) |",
        f"| content search `地址填错` (4 characters), p95 | {fig['search_地址填错']:.0f} ms | "
        f"{fig['search_地址填错_naive']:.0f} ms (LIKE scan) |",
        f"| dashboard, 30 days, p95 | {fig['dashboard']:.0f} ms | "
        f"{fig['dashboard_naive']:.0f} ms (first responses recomputed from messages) |",
        f"| export with content | {export.get('rows', 0):,} rows in "
        f"{export.get('seconds', 0):.1f} s, peak {export.get('peak_mb', 0):.0f} MB "
        f"({export.get('size_mb', 0):.1f} MB CSV) | — |",
    ])
    write_section(f"history-{backend.lower()}", f"History at scale on {backend}",
                  ".venv/bin/python benchmarks/history_bench.py"
                  + (" --postgres" if args.postgres else ""), body)
    _ = (os, resource)


if __name__ == "__main__":
    main()

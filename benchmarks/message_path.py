"""What one chat message costs the server, counted in-process: statements, Redis
commands, CPU time, and a profile of where that CPU goes.

``benchmarks/ws_load.py`` measures the whole server from outside (sockets,
fan-out, a real client), but on a shared machine its figures move with the
load. This script runs the same service path a visitor's ``message`` frame runs
(``ws._visitor_frame``'s body: ``conversations.visitor_message`` and the ack's
view and envelope) in one process, on PostgreSQL and Redis as in production,
with meiqia's own plugins, for conversations already handled by agents (the
steady state of a busy team), and counts:

* statements sent to the database per message (peewee logs each one), and
  transactions;
* Redis commands per message (a counting wrapper on the hub's client);
* CPU time per message (``time.process_time``: the process's own CPU, which a
  busy machine stretches far less than wall time);
* the top functions of a cProfile run over the same loop (``--profile``).

Run: ``.venv/bin/python benchmarks/message_path.py [--messages 2000] [--profile]``
(PostgreSQL at ``--pg``, Redis at ``--redis``; a database of its own is created
and dropped). ``--sqlite`` runs the embedded default instead.

``--sessions`` measures a new visitor's ``POST /api/v1/widget/session`` through the
Flask route instead (the bot off, so his chat is routed as it starts: what each
visitor of a connect storm or a campaign costs). ``--routing`` measures a new visitor's first message asking for a person instead
(the team's bot off): routing to the least-loaded agent, the handover line, the
states pushed. With ``--seats 2`` the agents fill up and the rest queue, so each
request also counts a queue (``--visitors 50 --agents 50 --seats 2``).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from benchmarks.ws_load import built_in_plugins  # noqa: E402


class Counter(logging.Handler):
    """Counts the statements peewee sends (it logs each at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.kinds: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        sql = record.msg[0] if isinstance(record.msg, tuple) else str(record.getMessage())
        word = str(sql).split(None, 1)[0].strip("('\"").upper() if sql else "?"
        self.kinds[word] = self.kinds.get(word, 0) + 1


def setup(app, visitors: int, agents: int, seats: int = 0) -> tuple[list, list]:
    """A team registered as the ws benchmark does (bot off, agents online with a
    live workspace), and ``visitors`` conversations handed to agents by their
    first message."""
    from meiqia.db import connection
    from meiqia.models import Agent
    from meiqia.models import Conversation
    from meiqia.services import accounts
    from meiqia.services import conversations
    from meiqia.services import presence
    from meiqia.services import teams
    from meiqia.services import visitors as visitor_service

    with app.app_context(), connection():
        admin = accounts.register_team({"team_name": "压测", "name": "管理员",
                                        "email": "admin@example.com",
                                        "password": "bench-pass-1"})
        team = admin.team
        teams.update_team(admin, {"settings": {"bot_enabled": False}})
        per = seats or visitors // agents + 1
        for n in range(agents):
            agent = Agent.create(team=team, email=f"a{n}@example.com", name=f"客服{n}",
                                 password_hash="!", role="agent", scope="self",
                                 max_concurrent=per, status="online")
            presence.agent_connected(agent)
        pairs = []
        for n in range(visitors):
            visitor, visit = visitor_service.start_session({"team_id": team.id},
                                                           "127.0.0.1", "bench", None)
            conversation, _new = conversations.start_or_resume(visitor, visit)
            conversations.visitor_message(visitor, conversation, "人工", f"first-{n}")
            pairs.append((visitor, Conversation.get_by_id(conversation.id)))
        handled = sum(1 for _, c in pairs if c.status == "open")
    return pairs, [handled]


def new_chats(app, args: argparse.Namespace) -> dict[int, tuple]:
    """``--routing``: a visitor session and its conversation (still with the bot) for
    every message the run will send, made before the clock starts."""
    from meiqia.db import connection
    from meiqia.models import Agent
    from meiqia.models import Team
    from meiqia.services import conversations
    from meiqia.services import teams
    from meiqia.services import visitors as visitor_service

    chats = {}
    with app.app_context(), connection():
        team = Team.select().first()
        admin = Agent.get(Agent.team == team.id, Agent.role == "admin")
        # The chats start with the bot (so the session does not route them), as when
        # the visitors came before the agents; their "人工" then routes each one.
        teams.update_team(admin, {"settings": {"bot_enabled": True}})
        keys = list(range(-50, 0)) + list(range(args.messages + 200))
        if args.profile:
            keys += list(range(2 * args.messages, 3 * args.messages))
        for n in keys:
            visitor, visit = visitor_service.start_session({"team_id": team.id},
                                                           "127.0.0.1", "bench", None)
            conversation, _new = conversations.start_or_resume(visitor, visit)
            chats[n] = (visitor, conversation)
        teams.update_team(admin, {"settings": {"bot_enabled": False}})
    return chats


def run(args: argparse.Namespace) -> dict:
    from meiqia.db import connection
    from meiqia.services import conversations
    from meiqia.services import messages
    from meiqia.testing.app import close_app
    from meiqia.testing.app import make_app
    from meiqia.web.ws import envelope

    tmp = Path(tempfile.mkdtemp())
    config = {"ENTRY_POINT_PLUGINS": built_in_plugins(), "JOBS_INLINE": False,
              "BOT_WARM_UP": True}
    db_name = None
    if not args.sqlite:
        import psycopg2

        db_name = f"meiqia_path_{uuid.uuid4().hex[:6]}"
        admin = psycopg2.connect(args.pg)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{db_name}"')
        config.update(DATABASE_URL=args.pg.rsplit("/", 1)[0] + "/" + db_name,
                      REDIS_URL=args.redis, REDIS_PREFIX=f"path-{db_name}")
    app = make_app(tmp, **config)
    try:
        seats = args.seats
        if (args.routing or args.sessions) and not seats:  # a seat for every new chat
            seats = (args.visitors + 3 * args.messages + 250) // args.agents + 1
        pairs, (handled,) = setup(app, args.visitors, args.agents, seats)
        hub = app.extensions["meiqia.hub"]
        redis_calls = [0]  # round trips: single commands and pipelines
        client = getattr(hub, "client", None)
        if client is not None:
            import redis.client

            original, original_pipe = client.execute_command, redis.client.Pipeline.execute

            def counted(*a, **k):
                redis_calls[0] += 1
                return original(*a, **k)

            def counted_pipe(self, *a, **k):
                redis_calls[0] += 1
                return original_pipe(self, *a, **k)

            client.execute_command = counted
            redis.client.Pipeline.execute = counted_pipe
        counter = Counter()
        peewee_log = logging.getLogger("peewee")

        fresh = new_chats(app, args) if args.routing else []
        web = app.test_client()
        team_id = pairs[0][0].team_id if pairs else None
        if args.sessions:
            from meiqia.models import Team

            with app.app_context(), connection():
                team_id = Team.select().first().id

        def one(n: int) -> None:
            if args.sessions:
                # A new visitor's widget session, through the route (the bot off,
                # so it routes his chat to an agent as it starts).
                answer = web.post("/api/v1/widget/session", json={"team_id": team_id})
                assert answer.status_code == 200, answer.get_json()
                return
            if args.routing:
                # A new visitor whose chat asks for a person (the team's bot is
                # off): his first message routes the chat to an agent.
                visitor, conversation = fresh[n]
                body, client_id = "人工", f"r{n}"
            else:
                visitor, conversation = pairs[n % len(pairs)]
                body, client_id = f"压测消息 {n}", f"m{n}"
            with connection():
                sent, created = conversations.visitor_message(
                    visitor, conversation, body, client_id)
                envelope("message", messages.visitor_view(sent, messages.reports_reads(
                    conversation)), sent.id)

        with app.app_context():
            for n in range(50):  # warm: the bot's index, the plugin threads, caches
                one(-n - 1)
            redis_calls[0] = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for n in range(args.messages):
                one(n)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            redis_n = redis_calls[0]
            # Counted apart: the counting handler costs CPU of its own.
            peewee_log.addHandler(counter)
            peewee_log.setLevel(logging.DEBUG)
            peewee_log.propagate = False
            for n in range(200):
                one(args.messages + n)
            peewee_log.removeHandler(counter)
            peewee_log.setLevel(logging.WARNING)
            statements = counter.count * args.messages / 200
            kinds = {k: v * args.messages / 200 for k, v in counter.kinds.items()}
            top = ""
            if args.profile:
                profile = cProfile.Profile(time.process_time)
                profile.enable()
                for n in range(args.messages):
                    one(2 * args.messages + n)
                profile.disable()
                import io

                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(40)
                top = out.getvalue()
        return {"messages": args.messages, "handled": handled,
                "cpu_ms": cpu * 1000 / args.messages, "wall_ms": wall * 1000 / args.messages,
                "statements": statements / args.messages,
                "kinds": {k: v / args.messages for k, v in sorted(kinds.items())},
                "redis": redis_n / args.messages, "profile": top}
    finally:
        close_app(app)
        if db_name:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--sessions", action="store_true",
                        help="each unit is a new visitor's widget session through the route "
                             "(the bot off: his chat is routed as it starts)")
    parser.add_argument("--seats", type=int, default=0,
                        help="each agent's limit (default: a seat for every chat; "
                             "with --routing, a small limit makes the rest queue)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--sqlite", action="store_true", help="the embedded default")
    parser.add_argument("--routing", action="store_true",
                        help="each message is a new visitor's first, asking for a person "
                             "(routing to an agent), instead of a chat already handled")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    fig = run(args)
    if fig["profile"]:
        print(fig["profile"])
    what = ("new visitors' widget sessions (POST /api/v1/widget/session), each chat routed"
            if args.sessions else
            "new visitors' first messages asking for a person, each routed"
            if args.routing else f"messages in {fig['handled']} handled conversations")
    line = (f"{fig['messages']:,} {what}: "
            f"{fig['cpu_ms']:.2f} ms CPU and {fig['wall_ms']:.2f} ms wall per {'session' if args.sessions else 'message'}; "
            f"{fig['statements']:.1f} statements "
            f"({', '.join(f'{k} {v:.1f}' for k, v in fig['kinds'].items())}); "
            f"{fig['redis']:.1f} Redis round trips")
    print(line)
    if args.no_write:
        return
    name = "message-path" + ("-sessions" if args.sessions else "") + (
        "-routing" if args.routing else "") + (
        "-sqlite" if args.sqlite else "")
    title = "Cost of one " + ("widget session" if args.sessions else "routed first message"
                              if args.routing else "visitor message")
    write_section(name, title + ", in-process"
                  + (" (SQLite)" if args.sqlite else " (PostgreSQL + Redis)"),
                  ".venv/bin/python benchmarks/message_path.py"
                  + (" --routing" if args.routing else "")
                  + (" --sessions" if args.sessions else "")
                  + (" --sqlite" if args.sqlite else ""), line)


if __name__ == "__main__":
    main()

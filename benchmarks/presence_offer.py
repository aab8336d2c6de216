"""Nobody left: how soon queued visitors hear it (issue 14).

One agent serves one visitor (limit 1) while N more wait in the queue, each on
a visitor socket. The agent then goes, in one of two ways:

- ``socket``: his only workspace socket closes (the tab closed). After the grace
  period (``AGENT_AWAY_GRACE_SECONDS``, here 2 s) the presence sweeper, which
  runs every ``PRESENCE_SWEEP_SECONDS`` (the production default, 1 s), marks him
  away; the time is counted from the end of the grace period;
- ``offline``: he sets himself offline (``PATCH /api/v1/agents/<id>``); counted
  from the request.

Measured: the time until every waiting visitor got the ``offer_ticket`` frame
(the last one) and the median over the visitors. In the same run, the plain
reference: an agent's reply, from the REST call to the visitor's socket.
Embedded default (SQLite, in-process hub, Werkzeug's threaded server).
Run: ``.venv/bin/python benchmarks/presence_offer.py [--trials 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from tests.api.test_conversations import start  # noqa: E402
from tests.conftest import close_app  # noqa: E402
from tests.conftest import make_app  # noqa: E402
from tests.helpers import ApiClient  # noqa: E402
from tests.ws.conftest import LiveServer  # noqa: E402
from tests.ws.conftest import Socket  # noqa: E402
from tests.ws.conftest import cookie_of  # noqa: E402

GRACE = 2.0
SWEEP = 1.0


def trial(waiting: int, mode: str) -> tuple[float, float, float]:
    """(last visitor told, median visitor told, reference reply) in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), AGENT_AWAY_GRACE_SECONDS=GRACE)
        live = LiveServer(app)
        sweeper = None
        try:
            with app.app_context():
                from meiqia.services import presence

                sweeper = presence.Sweeper(app, SWEEP)
                sweeper.ensure_running()
                admin = ApiClient.registered(app).without_bot()
                li = admin.online_agent(1, connected=False)
                agent = Socket(live.url("/ws/agent"), cookie_of(li))
                agent.expect("hello")
                _c, token, served, _ = start(app, admin.team["id"])
                first = Socket(live.url(f"/ws/visitor?token={token}"))
                first.expect("hello")
                sockets = []
                for _ in range(waiting):
                    _c, token, _cid, _ = start(app, admin.team["id"])
                    socket = Socket(live.url(f"/ws/visitor?token={token}"))
                    socket.expect("hello")
                    sockets.append(socket)
                began = time.monotonic()
                li.post(f"/api/v1/conversations/{served}/messages", json={"body": "您好"})
                first.expect("message", 10, where=lambda d: d.get("body") == "您好")
                reference = time.monotonic() - began

                if mode == "socket":
                    agent.close()
                    began = time.monotonic() + GRACE
                else:
                    began = time.monotonic()
                    li.patch(f"/api/v1/agents/{li.agent['id']}", json={"status": "offline"})
                told = []
                for socket in sockets:
                    socket.expect("conversation", GRACE + 30,
                                  where=lambda d: d.get("offer_ticket") == "nobody_online")
                    told.append(time.monotonic() - began)
                return max(told), statistics.median(told), reference
        finally:
            if sweeper is not None:
                sweeper.stop()
            Socket.close_all()
            live.stop()
            close_app(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--waiting", type=int, nargs="*", default=[1, 10, 50])
    args = parser.parse_args()
    rows = []
    for mode in ("socket", "offline"):
        for waiting in args.waiting:
            runs = [trial(waiting, mode) for _ in range(args.trials)]
            last = [r[0] for r in runs]
            median = [r[1] for r in runs]
            reference = [r[2] for r in runs]
            row = (f"| {mode} | {waiting} | {statistics.median(last):.3f} | {max(last):.3f} "
                   f"| {statistics.median(median):.3f} | {statistics.median(reference):.3f} |")
            print(row, flush=True)
            rows.append(row)
    body = f"""One agent (limit 1) serves one visitor while N wait in the queue; then he goes.
`socket`: his only workspace socket closes; counted from the end of the grace period
({GRACE:g} s here, 60 s by default), with the presence sweep every {SWEEP:g} s (the
default). `offline`: he sets himself offline; counted from the request. Seconds until the
last waiting visitor got `offer_ticket` (median and worst of {args.trials} trials), the
median visitor, and the plain reference of the same run: an agent's reply from the REST
call to the visitor's socket. Measured while other test suites ran on the same 2 cores.

| agent goes by | waiting | last told (median) | last told (worst) | median visitor | reference reply |
|---|---|---|---|---|---|
""" + "\n".join(rows) + """

The `socket` figures are bounded by the sweep interval: the sweeper sees the agent's last
socket expire at its next tick, then tells every waiting visitor in one pass. So with the
defaults a visitor hears within about 1 s after the grace period, far under the 5 s goal;
a process killed -9 adds the heartbeat (`AGENT_HEARTBEAT_SECONDS`, 75 s) instead of the
grace period (tests/integration/test_two_processes.py measures it with 3 s).
"""
    write_section("presence-offer", "Nobody left: time to the leave-a-message offer",
                  ".venv/bin/python benchmarks/presence_offer.py", body)


if __name__ == "__main__":
    main()

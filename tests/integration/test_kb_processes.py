"""The knowledge base in production shape: two gunicorn processes and an rq worker.

Each web process keeps its own index. An edit made on one is answered by that
process on the very next question and by the other as soon as it has seen the
new KB version; a reindex runs as a job on the ``meiqia worker`` process with
its progress on the job record, and bumps the version the web processes follow.
"""

from __future__ import annotations

from tests.helpers import wait_until
from tests.integration.test_two_processes import Http
from tests.integration.test_two_processes import cluster  # noqa: F401 - the fixture


def test_edits_and_a_reindex_reach_every_process(cluster):  # noqa: F811 - the fixture
    (a, b), worker = cluster
    admin = Http()
    data = admin.call("POST", a.url("/api/v1/auth/register"), {
        "team_name": "知识库双进程", "name": "管理员", "email": "admin@example.com",
        "password": "two-proc-1"})
    admin.csrf = data["csrf_token"]
    entries = [("return-fee", ["退货运费谁出", "退货要自己付运费吗"], "七天无理由退货由买家承担运费。"),
               ("ship-when", ["什么时候发货", "下单后多久发货"], "下午四点前付款当天发货。"),
               ("invoice", ["怎么开发票", "能开发票吗"], "在结算页勾选开具发票。")]
    created = {key: admin.call("POST", a.url("/api/v1/knowledge"),
                               {"key": key, "questions": qs, "answer": answer})
               for key, qs, answer in entries}

    def answer(server, question: str = "退货运费谁出") -> str:
        asked = admin.call("POST", server.url("/api/v1/bot/ask"), {"question": question})
        return asked["candidates"][0]["answer"] if asked["candidates"] else ""

    assert answer(b) == "七天无理由退货由买家承担运费。"  # B builds its index
    admin.call("PATCH", a.url(f"/api/v1/knowledge/{created['return-fee']['id']}"),
               {"answer": "运费由我们承担。"})
    assert answer(a) == "运费由我们承担。"  # the editing process: at once
    wait_until(lambda: answer(b) == "运费由我们承担。", 30, "process B to apply the edit")

    job = admin.call("POST", a.url("/api/v1/knowledge/reindex"), {})

    def finished() -> dict | None:
        worker.check_alive()
        state = admin.call("GET", a.url(f"/api/v1/jobs/{job['job_id']}"))
        assert state["status"] != "failed", state
        return state if state["status"] == "finished" else None

    state = wait_until(finished, 120, "the worker to run the reindex")
    assert state["progress"] == 1.0 and state["message"] == "3 entries indexed"
    assert state["result"]["entries"] == 3 and state["result"]["variants"] == 6
    # Both processes keep answering, and follow later edits, after the reindex.
    admin.call("PATCH", a.url(f"/api/v1/knowledge/{created['ship-when']['id']}"),
               {"answer": "当天发货。"})
    for server in (a, b):
        wait_until(lambda s=server: answer(s, "什么时候发货") == "当天发货。", 30,
                   "every process to follow the version after the reindex")
        assert answer(server) == "运费由我们承担。"
    # rq logs "Job OK" after the job returns, which is after our record says "done".
    wait_until(lambda: "Job OK" in worker.output(), 30, "rq's 'Job OK' in the worker's log")

"""docs/deploy.md, followed section by section with the real pieces (issue #7).

The commands, the environment, the Procfile and the nginx configuration are read
from the document (``tests/integration/deploy_doc.py``), so what is tested is what
the document says. Only what must differ on a test machine is substituted: names
of the database and role (fresh ones), the instance folder (a tmp dir), the Redis
database and key prefix (the tests'), the ports, and nginx without TLS.

§1 a role and a database with the doc's createuser/createdb/psql lines; §2 the
doc's exports and ``meiqia init``; §3 the Procfile's release, web (gunicorn, two
processes) and worker; §4 nginx with the doc's server block; §5 /healthz, a chat
through nginx (websockets, a 2 MB upload, X-Forwarded-For) and a history export
run by the worker; §6 the backup commands, restored into another database; §7
``meiqia db upgrade`` again changes nothing.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import http.client
import http.cookiejar
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import textwrap
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.api.test_uploads import CONTENT_TYPE
from tests.api.test_uploads import multipart
from tests.conftest import IN_CI
from tests.conftest import PG_HOW
from tests.conftest import PG_URL
from tests.conftest import REDIS_URL
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import unavailable
from tests.helpers import wait_until
from tests.integration import deploy_doc
from tests.integration.deploy_doc import ROOT
from tests.integration.deploy_doc import Process
from tests.integration.deploy_doc import argv
from tests.integration.test_two_processes import Http
from tests.integration.test_two_processes import free_port
from tests.ws.conftest import Socket

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BIN = Path(sys.executable).parent  # the venv's meiqia and gunicorn
PG = urlparse(PG_URL)
PG_HOST, PG_PORT = PG.hostname or "127.0.0.1", str(PG.port or 5432)
PG_SUPERUSER = PG.username or "postgres"
#: The browser's address as nginx sees it: the client binds this loopback address,
#: nginx connects to gunicorn from 127.0.0.1, so only X-Forwarded-For can tell it.
VISITOR_IP = "127.0.0.5"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
START_UP = 180  # seconds: importing scikit-learn on a busy machine has taken 30+ s


def pg_url(role: str, database: str) -> str:
    return f"postgresql://{role}@{PG_HOST}:{PG_PORT}/{database}"


def resolve(words: list[str]) -> list[str]:
    """The venv's program for a doc command (``meiqia``, ``gunicorn``), else PATH's."""
    own = BIN / words[0]
    return [str(own) if own.exists() else words[0], *words[1:]]


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (
        f"`{shlex.join(args)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def as_superuser(command: str, role: str, database: str) -> list[str]:
    """A §1 ``sudo -u postgres <tool> …`` line for this server: the superuser by
    ``-h/-p/-U`` instead of sudo, ``meiqia`` the role where it names one (the
    createuser argument, createdb's ``-O``) and the database elsewhere."""
    words = argv(command)
    assert words[:3] == ["sudo", "-u", "postgres"], command
    program, *rest = words[3:]
    out, previous = [], ""
    for word in rest:
        if word == "meiqia":
            word = role if program == "createuser" or previous == "-O" else database
        out.append(word)
        previous = word
    return [program, "-h", PG_HOST, "-p", PG_PORT, "-U", PG_SUPERUSER, *out]


def query(url: str, sql: str, *params: Any) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def missing(what: str, how: str) -> None:
    message = f"{what} not installed: {how}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class ProxiedHttp(Http):
    """``Http`` through nginx without TLS. The doc sets
    ``MEIQIA_SESSION_COOKIE_SECURE=true``, so the session cookie is Secure, which a
    browser sends over https only; here nginx listens without TLS, so this jar
    sends Secure cookies over http too."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.jar.set_policy(http.cookiejar.DefaultCookiePolicy(
            secure_protocols=("https", "wss", "http")))

    def api(self, method: str, path: str, body: dict | None = None,
            headers: dict | None = None) -> dict:
        return self.call(method, self.base + path, body, headers)

    def raw(self, method: str, path: str, data: bytes | None = None,
            headers: dict | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"X-CSRF-Token": self.csrf, **(headers or {})})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


class Stack:
    """What the walkthrough started: stopped and dropped at the end, also on failure."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.processes: list[Process] = []
        self.role = f"meiqia_deploy_{uuid.uuid4().hex[:8]}"
        self.databases = [self.role, f"{self.role}_restored"]

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(name, args, env, ROOT, self.tmp)
        self.processes.append(process)
        return process

    def teardown(self) -> None:
        import psycopg2
        from psycopg2 import sql

        Socket.close_all()  # open websockets would hold gunicorn's graceful stop
        for process in reversed(self.processes):  # nginx, then web and worker
            process.stop()
        conn = psycopg2.connect(pg_url(PG_SUPERUSER, "postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in self.databases:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.role)))
        conn.close()


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    import psycopg2

    if NGINX is None:
        missing("nginx", "apt-get install nginx")
    for tool in ("createuser", "createdb", "psql", "pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            missing(tool, "apt-get install postgresql-client")
    try:
        psycopg2.connect(pg_url(PG_SUPERUSER, "postgres"), connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        unavailable("PostgreSQL", PG_HOW, exc)
    stack = Stack(tmp_path)
    try:
        yield stack
    finally:
        stack.teardown()


def healthz(base: str, process: Process | None = None) -> dict | None:
    """/healthz when it answers ``ok``, else None (``process`` must still be running)."""
    if process is not None:
        process.check_alive()
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            data = json.loads(response.read())
    except OSError:  # not listening yet, 502 from nginx, 503 unhealthy
        return None
    return data if data["status"] == "ok" else None


def connections_per_worker(output: str, port: int, count: int) -> dict[int, int]:
    """Open ``count`` connections to gunicorn at once and say how many each worker
    process took (accepted and held). deploy/gunicorn.conf.py's ``reuse_port``
    gives every worker a listening socket of its own; with one shared socket one
    worker took most of them (docs/benchmarks.md, "Production at 300 msg/s")."""
    import socket as socket_module

    pids = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", output)]

    def sockets_of(pid: int) -> int:
        fd_dir = Path(f"/proc/{pid}/fd")
        n = 0
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                n += os.readlink(fd).startswith("socket:")
        return n

    before = {pid: sockets_of(pid) for pid in pids}
    held = []
    try:
        for _ in range(count):
            conn = socket_module.create_connection(("127.0.0.1", port), timeout=10)
            held.append(conn)
        # The most each held at once: gunicorn closes a connection idle for its
        # keep-alive (5 s), maybe before a worker still warming up accepts its share.
        after = {pid: 0 for pid in pids}

        def all_accepted() -> bool:
            after.update({pid: max(after[pid], sockets_of(pid) - before[pid]) for pid in pids})
            return sum(after.values()) >= 0.95 * count  # give or take the app's own sockets

        wait_until(all_accepted, 30, "gunicorn to accept the connections")
        return after
    finally:
        for conn in held:
            conn.close()


def nginx_conf(folder: Path, server: str) -> str:
    """The doc's server block inside the minimum nginx needs to run from ``folder``
    without root: events, http, temp paths of its own, no access log."""
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx hands its workers to `nobody`, who cannot enter pytest's 0700 tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log off;\n{temp}\n\n"
            f"{textwrap.indent(server, '    ')}}}\n")


def post_from(address: str, port: int, path: str, body: dict,
              headers: dict[str, str]) -> dict:
    """A JSON POST from a given local address (``http.client``: urllib cannot bind one)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                      source_address=(address, 0))
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.status == 200, data
    return json.loads(data)


def test_docs_deploy_md_step_by_step(stack: Stack, tmp_path: Path, redis_prefix: str) -> None:
    role = database = stack.role
    restored = stack.databases[1]
    db_url = pg_url(role, database)

    # --- §1 PostgreSQL and Redis: the doc's two lines, as the superuser --------------
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    base_env["PATH"] = f"{BIN}{os.pathsep}{base_env.get('PATH', '')}"
    superuser_lines = [c for c in deploy_doc.commands(1) if c.startswith("sudo -u postgres")]
    assert [argv(c)[3] for c in superuser_lines] == ["createuser", "createdb", "psql"]
    for line in superuser_lines[:2]:
        run(as_superuser(line, role, database), base_env)
    # The third asks for the password at a terminal (psql's \password); the same as SQL.
    assert argv(superuser_lines[2])[3:] == ["psql", "-c", "\\password meiqia"]
    db_password = "Pw-" + uuid.uuid4().hex
    run(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_SUPERUSER, "-d", "postgres", "-c",
         f"ALTER ROLE \"{role}\" PASSWORD '{db_password}'"], base_env)
    assert query(db_url, "SELECT pg_get_userbyid(datdba) FROM pg_database "
                 "WHERE datname = current_database()") == [(role,)]
    assert query(db_url, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", role) == [(False,)]

    # --- §2 Install and configure: the doc's exports, then its `meiqia init` -------------
    instance = tmp_path / "instance"
    doc_env = deploy_doc.exports(2)
    doc_db = urlparse(doc_env["MEIQIA_DATABASE_URL"])
    assert (doc_db.username, doc_db.path) == ("meiqia", "/meiqia"), "§1 and §2 name differently"
    assert doc_db.password and doc_db.hostname == "127.0.0.1", "§2's URL: TCP, with §1's password"
    here = {"MEIQIA_INSTANCE_PATH": str(instance),
            "MEIQIA_DATABASE_URL": f"postgresql://{role}:{db_password}@{PG_HOST}:{PG_PORT}/"
                                   f"{database}",
            "MEIQIA_REDIS_URL": REDIS_URL}
    assert here.keys() <= doc_env.keys(), f"§2 no longer exports {here.keys() - doc_env.keys()}"
    env = {**base_env, **doc_env, **here, "PYTHONUNBUFFERED": "1",
           # Not in the doc: this run's rq queue and pub/sub channels, apart from other
           # tests sharing the Redis server.
           "MEIQIA_REDIS_PREFIX": redis_prefix}
    init = run(resolve(deploy_doc.the_command(2, "meiqia init")), env)
    assert "team: 我的团队" in init and "admin: admin@example.com" in init, init
    password = re.search(r"^password: (\S+)\s+\(shown once", init, re.MULTILINE)
    assert password, f"`meiqia init` printed no password:\n{init}"
    assert re.search(r"^knowledge base: \d+ entries imported", init, re.MULTILINE), init
    assert (instance / "secret_key").read_text().strip()  # "writes secret_key"

    # --- §3 Processes: the Procfile, as the doc shows it -----------------------------------
    procfile = deploy_doc.procfile_file()
    assert deploy_doc.procfile_block() == procfile, "§3's Procfile block != deploy/Procfile"
    assert set(procfile) == {"release", "web", "worker"}
    assert "up to date" in run(resolve(argv(procfile["release"])), env)
    web_port, nginx_port = free_port(), free_port()
    web = stack.start("web", resolve(argv(procfile["web"])),
                      {**env, "MEIQIA_BIND": f"127.0.0.1:{web_port}", "MEIQIA_WORKERS": "2"})
    worker = stack.start("worker", resolve(argv(procfile["worker"])), env)
    wait_until(lambda: healthz(f"http://127.0.0.1:{web_port}", web), START_UP,
               "gunicorn to answer /healthz")
    wait_until(lambda: web.output().count("Booting worker with pid") == 2, START_UP,
               "gunicorn's two worker processes")
    assert "Using worker: gevent" in web.output()  # deploy/gunicorn.conf.py: gevent on PostgreSQL
    spread = connections_per_worker(web.output(), web_port, 200)
    assert min(spread.values()) >= 50, f"connections not spread over the workers: {spread}"

    # --- §4 nginx: the doc's block, upstream and listen replaced, no TLS --------------------
    folder = tmp_path / "nginx"
    folder.mkdir()
    conf = folder / "nginx.conf"
    access_log = folder / "meiqia.access.log"
    conf.write_text(nginx_conf(folder, deploy_doc.nginx_server(
        upstream=f"127.0.0.1:{web_port}", listen=f"127.0.0.1:{nginx_port}",
        access_log=str(access_log))))
    nginx_args = [str(NGINX), "-p", str(folder), "-c", str(conf), "-e", "stderr",
                  "-g", f"daemon off; pid {folder / 'nginx.pid'}; error_log stderr;"]
    run([*nginx_args, "-t"], base_env)
    nginx = stack.start("nginx", nginx_args, base_env)
    site = f"http://127.0.0.1:{nginx_port}"

    # --- §5 Health checks, through nginx: the worker registers -----------------------
    health = wait_until(lambda: (h := healthz(site, nginx)) and h["queue"]["workers"] >= 1
                        and h, START_UP, "/healthz through nginx with a worker")
    assert health["database"] == {"ok": True, "backend": "postgresql"}
    assert health["hub"]["kind"] == "redis" and health["queue"]["kind"] == "rq"

    # A chat through nginx: the admin from `meiqia init` logs in and goes online.
    admin = ProxiedHttp(site)
    login = admin.api("POST", "/api/v1/auth/login",
                      {"email": "admin@example.com", "password": password.group(1)})
    admin.csrf = login["csrf_token"]
    assert all(cookie.secure for cookie in admin.jar), "MEIQIA_SESSION_COOKIE_SECURE ignored"
    admin_id, team_id = login["agent"]["id"], login["team"]["id"]
    admin.api("PATCH", f"/api/v1/agents/{admin_id}", {"status": "online", "max_concurrent": 3})

    # X-Forwarded-For: a forged entry from the browser, then nginx's own.
    session = post_from(VISITOR_IP, nginx_port, "/api/v1/widget/session",
                        {"team_id": team_id}, {"X-Forwarded-For": "203.0.113.9"})
    token, cid = session["token"], session["conversation"]["conversation_id"]
    assert session["conversation"]["status"] == "bot"
    ws = f"ws://127.0.0.1:{nginx_port}"
    agent = Socket(f"{ws}/ws/agent", admin.cookie())
    agent.expect("hello", timeout=30)
    visitor = Socket(f"{ws}/ws/visitor?token={token}")
    visitor.expect("hello", timeout=30)

    # The demo knowledge base `meiqia init` imported answers first (built on first use).
    visitor.send("message", {"body": "退货运费谁出？", "client_msg_id": "v1"})
    visitor.expect("ack", timeout=30)
    is_answer = lambda d: d["payload"].get("bot") == "answer"  # noqa: E731
    # Stored before the ack is sent, so it may arrive before it.
    answer = visitor.saw("message", is_answer) or visitor.expect("message", 120, is_answer)
    answer = answer["data"]
    assert "运费" in answer["body"]
    visitor.send("human", {})
    opened = visitor.expect("conversation", timeout=30, where=lambda d: "outcome" in d)
    assert opened["data"]["outcome"] == "open"
    assert opened["data"]["handler"] is not None

    visitor.send("message", {"body": "我要退货，单号 1234", "client_msg_id": "v2"})
    visitor.expect("ack", timeout=30)
    agent.expect("message", timeout=30, where=lambda d: d.get("body") == "我要退货，单号 1234")
    agent.send("message", {"conversation_id": cid, "body": "好的，马上处理", "client_msg_id": "a1"})
    agent.expect("ack", timeout=30)
    visitor.expect("message", timeout=30, where=lambda d: d.get("body") == "好的，马上处理")

    # An upload over nginx's default 1 MB: the doc's client_max_body_size lets it through.
    content = os.urandom(2 * 1024 * 1024 + 17)
    widget = ProxiedHttp(site)  # the visitor's side: his token, no agent cookie
    status, body = widget.raw("POST", f"/api/v1/widget/conversations/{cid}/uploads",
                             multipart(("kind", None, b"file"), ("file", "退货凭证.bin", content)),
                             {"Content-Type": CONTENT_TYPE, "X-Visitor-Token": token})
    assert status == 201, body
    upload = json.loads(body)
    assert upload["size"] == len(content)
    widget.api("POST", f"/api/v1/widget/conversations/{cid}/messages",
              {"body": "退货凭证.bin", "kind": "file", "attachment": upload["key"],
               "client_msg_id": "v3"}, {"X-Visitor-Token": token})
    agent.expect("message", timeout=30, where=lambda d: d.get("kind") == "file")
    status, downloaded = admin.raw("GET", f"/api/v1/attachments/{upload['key']}")
    assert status == 200
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(content).digest()

    # Exactly once on both sockets (a late duplicate would show within the quiet spell).
    for sock in (agent, visitor):
        ids = Counter(f["data"]["id"] for f in sock.seen if f["type"] == "message")
        assert ids and set(ids.values()) == {1}, ids
        assert sock.quiet("message", 1.0, where=lambda d, seen=ids: d["id"] in seen)
    bodies = [f["data"]["body"] for f in visitor.seen if f["type"] == "message"]
    assert bodies.count("好的，马上处理") == 1
    stored = admin.api("GET", f"/api/v1/conversations/{cid}/messages")["messages"]
    texts = [m["body"] for m in stored if m["kind"] == "text" and m["sender_kind"] != "bot"]
    assert texts == ["退货运费谁出？", "我要退货，单号 1234", "好的，马上处理"]

    seen_by_agent = admin.api("GET", f"/api/v1/conversations/{cid}")
    assert seen_by_agent["handler_id"] == admin_id
    # nginx's X-Forwarded-For entry: neither the forgery nor nginx's own address.
    assert seen_by_agent["customer"]["visit"]["ip"] == VISITOR_IP

    admin.api("POST", f"/api/v1/conversations/{cid}/end", {})
    visitor.expect("conversation", timeout=30, where=lambda d: d.get("status") == "ended")
    # The doc's access log: the visitor socket's path, never its ?token= (nginx writes
    # a websocket's line when it closes).
    visitor.close()
    logged = wait_until(lambda: (text := access_log.read_text())
                        and "GET /ws/visitor HTTP/1.1" in text and text, 30,
                        "the visitor socket in nginx's access log")
    assert token not in logged, logged[-2000:]

    # A history export: a job that only the `meiqia worker` process can run.
    export = admin.api("POST", "/api/v1/history/exports", {"format": "csv",
                                                            "with_content": True})

    def export_done() -> dict | None:
        worker.check_alive()
        state = admin.api("GET", f"/api/v1/history/exports/{export['id']}")
        assert state["status"] != "failed", state
        return state if state["status"] == "done" else None

    done = wait_until(export_done, START_UP, "the worker to finish the export")
    status, data = admin.raw("GET", done["download"])
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [row["编号"] for row in rows] == [str(cid)]  # headers in the admin's words
    assert rows[0]["IP"] == VISITOR_IP
    assert "好的，马上处理" in json.dumps(rows[0], ensure_ascii=False)
    # rq logs "Job OK" after the job returns, which is after our record says "done".
    wait_until(lambda: "Job OK" in worker.output(), 30, "rq's 'Job OK' in the worker's log")

    # --- §6 Backups: the doc's pg_dump and tar lines, then its pg_restore --------------
    backups = tmp_path / "backups"
    backups.mkdir()
    dump_line, tar_line = (c for c in deploy_doc.commands(6)
                           if c.startswith(("pg_dump", "tar")))
    dump_line, n = re.subn(r"^pg_dump -Fc meiqia ", f"pg_dump -Fc {shlex.quote(db_url)} ",
                           dump_line)
    assert n == 1, "§6: expected `pg_dump -Fc meiqia …`"
    run(["bash", "-c", dump_line], base_env, cwd=backups)
    tar_line, n = re.subn(r" -C /var/lib/meiqia ", f" -C {shlex.quote(str(instance))} ",
                          tar_line)
    assert n == 1, "§6: expected `tar … -C /var/lib/meiqia secret_key uploads`"
    run(["bash", "-c", tar_line], base_env, cwd=backups)
    (dump,) = backups.glob("meiqia-*.dump")
    (archive,) = backups.glob("files-*.tgz")
    with tarfile.open(archive) as tar:
        assert f"uploads/{upload['key']}" in tar.getnames()
        assert "secret_key" in tar.getnames()  # without it no token verifies (below)

    (restore,) = (c[c.index("pg_restore"):] for c in deploy_doc.comments(6)
                  if "pg_restore" in c)
    words = argv(restore)
    assert words[:3] == ["pg_restore", "-d", "meiqia"] and words[3].endswith(".dump"), restore
    # "into an empty database (createdb as in §1)"
    createdb = next(c for c in deploy_doc.commands(1) if " createdb " in c)
    run(as_superuser(createdb, role, restored), base_env)
    run(["pg_restore", "-d", pg_url(role, restored), str(dump)], base_env)
    restored_url = pg_url(role, restored)
    assert query(restored_url, "SELECT status FROM conversation WHERE id = %s", cid) == [
        ("ended",)]
    in_order = "SELECT body FROM message WHERE conversation_id = %s ORDER BY id"
    original = query(db_url, in_order, cid)
    assert ("好的，马上处理",) in original and query(restored_url, in_order, cid) == original
    assert query(restored_url, "SELECT ip FROM visit") == [(VISITOR_IP,)]

    # The doc's `tar xzf` into a new instance folder: the visitor's token verifies
    # there; in a folder without the archive's key it does not (a new key is written).
    (unpack,) = (c[c.index("tar xzf"):] for c in deploy_doc.comments(6) if "tar xzf" in c)
    words = argv(unpack)
    assert words[:2] == ["tar", "xzf"] and words[3:] == ["-C", "/var/lib/meiqia"], unpack
    for with_key in (True, False):
        home = tmp_path / f"restored-{with_key}"
        (home / "instance").mkdir(parents=True)
        if with_key:
            run(["tar", "xzf", str(archive), "-C", str(home / "instance")], base_env)
        restored_app = make_app(home, DATABASE_URL=restored_url, SECRET_KEY=None)
        try:
            answer = restored_app.test_client().get(
                f"/api/v1/widget/conversations/{cid}/messages",
                headers={"X-Visitor-Token": token})
        finally:
            close_app(restored_app)
        assert answer.status_code == (200 if with_key else 401), answer.get_json()
        if with_key:
            bodies = [m["body"] for m in answer.get_json()["messages"]]
            assert "好的，马上处理" in bodies

    # --- §7 Upgrades: `meiqia db upgrade` again changes nothing ------------------------
    def snapshot() -> tuple[list[str], list]:
        dumped = run(["pg_dump", "--schema-only", db_url], base_env).splitlines()
        # pg_dump's \restrict line carries a random key per run.
        schema = [line for line in dumped if not line.startswith(("\\restrict", "\\unrestrict"))]
        counts = query(db_url, "SELECT (SELECT count(*) FROM schema_migration), "
                       "(SELECT count(*) FROM message), (SELECT count(*) FROM conversation)")
        return schema, counts

    before = snapshot()
    assert "up to date" in run(resolve(deploy_doc.the_command(7, "meiqia db upgrade")), env)
    assert snapshot() == before
    assert healthz(site, nginx)


class HostEcho:
    """An upstream that answers every request with the Host header nginx passed."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler
        from http.server import ThreadingHTTPServer

        class Echo(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = (self.headers.get("Host") or "").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as files (PEM)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "support.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


#: Secrets that travel in addresses (docs/security.md §11), as a browser or a script
#: would send them: none may reach the access log of the doc's nginx block.
SECRETS = {"/ws/visitor?token=VisitorTok3n.abc&lang=zh-CN": "VisitorTok3n",
           "/api/v1/attachments/k1?token=AttachTok3n": "AttachTok3n",
           "/ws/agent?api_token=mq_ApiTok3nSecret": "ApiTok3nSecret",
           "/api/v1/widget/session?renew_key=RenewK3ySecret": "RenewK3ySecret",
           "/reset-password/ResetS3cretPath": "ResetS3cretPath"}


def test_docs_nginx_block_as_printed_passes_nginx_t_keeps_the_port_and_logs_no_secret(
        tmp_path: Path) -> None:
    """§4's block as printed (only its upstream, listen port, certificate and log files
    are this machine's): ``nginx -t`` accepts it, with TLS; the Host it passes keeps a
    port other than 443 (the agent socket's Origin check and reset links need it); its
    access log has each path but no token, key or reset secret."""
    import ssl

    if NGINX is None:
        missing("nginx", "apt-get install nginx")
    folder = tmp_path / "nginx"
    folder.mkdir()
    os.chmod(tmp_path, 0o755)  # nginx's workers read the certificate's folder
    echo = HostEcho()
    port = free_port()
    access_log = folder / "meiqia.access.log"
    conf = folder / "nginx.conf"
    conf.write_text(nginx_conf(folder, deploy_doc.nginx_server(
        upstream=f"127.0.0.1:{echo.port}", listen=f"127.0.0.1:{port}",
        access_log=str(access_log), certificate=self_signed(folder))))
    nginx_args = [str(NGINX), "-p", str(folder), "-c", str(conf), "-e", "stderr",
                  "-g", f"daemon off; pid {folder / 'nginx.pid'}; error_log stderr;"]
    env = dict(os.environ)
    checked = run([*nginx_args, "-t"], env)
    assert "test is successful" in checked, checked
    nginx = Process("nginx", nginx_args, env, ROOT, tmp_path)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def get(path: str) -> str:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", timeout=10,
                                    context=context) as response:
            return response.read().decode()

    try:
        wait_until(lambda: nginx.check_alive() or _answers(get), 30, "nginx to answer")
        for path in SECRETS:
            assert get(path) == f"127.0.0.1:{port}", path  # the port kept in Host
    finally:
        nginx.stop()
        echo.close()
    logged = access_log.read_text()
    for secret in SECRETS.values():
        assert secret not in logged, (secret, logged)
    assert '"GET /ws/visitor HTTP/1.1" 200' in logged, logged
    assert '"GET /reset-password/[redacted] HTTP/1.1" 200' in logged, logged
    assert logged.count("?") == 0, logged  # no query string at all


def _answers(get: Any) -> bool:
    try:
        get("/healthz")
    except OSError:
        return False
    return True

"""A bare flask-sock echo app: the reference for memory per socket on the same
gunicorn gevent worker as meiqia (benchmarks/ws_sockets.py). flask-sock and
simple-websocket as they come (a reader thread per socket), nothing of ours.

Run: ``gunicorn -k gevent benchmarks.flask_sock_echo:app``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": None}
sock = Sock(app)


@sock.route("/echo")
def echo(ws: Any) -> None:
    while True:
        ws.send(ws.receive())


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}

"""Sockets decline permessage-deflate (issue 19, memory per socket).

Every browser offers the extension; accepted, each socket keeps a zlib
compressor and decompressor for its life (about 100 KB resident: 156 KB per
socket against 45 KB in ``benchmarks/ws_load.py --deflate``). The server now
answers the handshake without it, and the client that offered it talks in plain
frames. The browser's own offer is checked in tests/browser/test_widget.py.
"""

from __future__ import annotations

import json

from websockets.sync.client import connect

from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient


def test_an_offer_of_compression_is_declined_and_the_chat_works(app, live):
    admin = AgentClient(live).register()
    admin.go_online()
    visitor = VisitorClient(live, admin.team["id"]).start()
    url = live.url(f"/ws/visitor?token={visitor.token}")
    with connect(url, compression="deflate", open_timeout=10) as ws:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in offered
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello"
        ws.send(json.dumps({"type": "message", "data": {"body": "压缩了吗？没有。",
                                                          "client_msg_id": "plain-1"}}))
        frame = json.loads(ws.recv(timeout=10))
        while frame["type"] != "ack":
            frame = json.loads(ws.recv(timeout=10))
        assert frame["data"]["message"]["body"] == "压缩了吗？没有。"

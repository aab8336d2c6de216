"""Clients of the JSON API for tests: an agent who logs in and sends the CSRF
header, through Flask's test client (no server needed); ``wait_until``, a
deadline for a state; ``new_client_id`` for messages.

Moved here from tests/helpers.py (which re-exports them) so plugin authors'
tests use what meiqia's own suite uses.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

ADMIN_PASSWORD = "s3cret-pass"
AGENT_PASSWORD = "agent-pass-1"


_client_ids = itertools.count(1)
_client_prefix = uuid.uuid4().hex[:8]


def new_client_id() -> str:
    """A fresh ``client_msg_id``, as every client must send with a message
    (docs/protocol.md, guarantee 2): unique across the test run."""
    return f"t-{_client_prefix}-{next(_client_ids)}"


class ApiClient:
    """A test client for one agent: JSON in and out, CSRF header on writes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()
        self.csrf: str | None = None
        self.agent: dict[str, Any] | None = None
        self.team: dict[str, Any] | None = None

    @classmethod
    def registered(cls, app: Any, team_name: str = "测试团队") -> ApiClient:
        api = cls(app)
        response = api.client.post(
            "/api/v1/auth/register",
            json={
                "team_name": team_name,
                "name": "王管理",
                "email": "admin@example.com",
                "password": ADMIN_PASSWORD,
            },
        )
        assert response.status_code == 201, response.get_json()
        api._take(response.get_json())
        return api

    def _take(self, data: dict[str, Any]) -> None:
        self.csrf = data["csrf_token"]
        self.agent = data["agent"]
        self.team = data["team"]

    def login(self, email: str, password: str) -> Any:
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        if response.status_code == 200:
            self._take(response.get_json())
        return response

    def new_agent(self, **fields: Any) -> ApiClient:
        """Create an agent through the API (as this admin) and log him in.

        Without a ``name``, the first free one of 李客服, 李客服2, 李客服3 …
        (names are unique in a team)."""
        named = "name" in fields
        name = fields.pop("name", "李客服")
        body = {"name": name, "email": fields.pop("email", "agent@example.com"),
                "password": AGENT_PASSWORD, **fields}
        response = self.post("/api/v1/agents", json=body)
        for n in range(2, 100):
            if named or not _name_taken(response):
                break
            body["name"] = f"{name}{n}"
            response = self.post("/api/v1/agents", json=body)
        assert response.status_code == 201, response.get_json()
        other = ApiClient(self.app)
        assert other.login(body["email"], AGENT_PASSWORD).status_code == 200
        return other

    def online_agent(self, limit: int = 2, connected: bool = True,
                     **fields: Any) -> ApiClient:
        """A new agent who set himself online, taking up to ``limit`` conversations.

        Routing serves only agents with a workspace open (docs/protocol.md, "Agent
        presence"); ``connected`` opens one for him (``workspace_open``) unless the
        test is about an agent who has none.
        """
        agent = self.new_agent(max_concurrent=limit, **fields)
        response = agent.patch(f"/api/v1/agents/{agent.agent['id']}", json={"status": "online"})
        assert response.status_code == 200, response.get_json()
        if connected:
            agent.workspace_open()
        return agent

    def go_online(self) -> ApiClient:
        """This agent sets himself online with his workspace open."""
        response = self.patch(f"/api/v1/agents/{self.agent['id']}", json={"status": "online"})
        assert response.status_code == 200, response.get_json()
        self.workspace_open()
        return self

    def workspace_open(self, hours: float = 24) -> int:
        """Record a workspace socket of this agent, as ``/ws/agent`` does when it
        opens (``presence.agent_connected``), alive for ``hours`` (a test client
        sends no heartbeats; tests/ws/test_presence.py uses real sockets)."""
        import datetime

        from meiqia.models import Agent
        from meiqia.models import AgentSocket
        from meiqia.models.base import utcnow
        from meiqia.services import presence

        with self.app.app_context():
            from meiqia.db import connection

            with connection():
                socket_id = presence.agent_connected(Agent.get_by_id(self.agent["id"]))
                AgentSocket.update(alive_until=utcnow() + datetime.timedelta(hours=hours)).where(
                    AgentSocket.id == socket_id).execute()
        return socket_id

    def without_bot(self) -> ApiClient:
        """Turn the team's bot off, so visitors' messages go straight to routing."""
        response = self.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
        assert response.status_code == 200, response.get_json()
        return self

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = dict(headers or {})
        if self.csrf:
            merged.setdefault("X-CSRF-Token", self.csrf)
        return merged

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.post(url, headers=self._headers(headers), **kw)

    def patch(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.patch(url, headers=self._headers(headers), **kw)

    def put(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.put(url, headers=self._headers(headers), **kw)

    def delete(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.delete(url, headers=self._headers(headers), **kw)


def wait_until(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy and return its value (a deadline, not a
    timing claim: the test waits for a state, however long the machine takes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _name_taken(response: Any) -> bool:
    """Whether an agent creation was refused because the name is taken."""
    return response.status_code == 409 and \
        (response.get_json() or {}).get("error", {}).get("field") == "name"

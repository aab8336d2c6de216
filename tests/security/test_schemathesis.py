"""schemathesis against ``/api/v1/openapi.json``: no request the document
allows, nor any it does not, may make the server answer 5xx.

In-process (the WSGI app, no server), on a real SQLite file. Every operation
and method of the document is exercised with valid (positive) and invalid
(negative) data, as each identity that may call it: an admin and an agent
limited to his own conversations (``scope=self``) with API tokens, a visitor
with a visitor token, and nobody for the open routes. Limited and refused
identities must get a 4xx, never a 5xx. A bounded number of examples per
operation keeps it to well under a minute; ``derandomize`` makes a run
repeatable, so CI and a developer see the same cases. A longer run:

    MEIQIA_SCHEMATHESIS_EXAMPLES=50 .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 3600 \\
        tests/security/test_schemathesis.py

Operations that could end the run's own credentials (revoke a token, deactivate
or demote an account, log out) run too; the credentials are put back after
each of their cases (``Identities.restore``), so later cases still authenticate.
The values no generator thinks of (lone surrogates, NUL, 20,000-deep nesting,
the calendar's ends) are thrown at every route by ``test_hostile_routes.py``.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from schemathesis.generation import GenerationMode

from meiqia.web.api import OPERATIONS as API_OPERATIONS
from tests.helpers import ApiClient

EXAMPLES = int(os.environ.get("MEIQIA_SCHEMATHESIS_EXAMPLES", "4"))
#: Who may be asked to call an operation of each ``auth`` kind.
IDENTITIES = {
    "none": ("nobody", "visitor"),
    "agent": ("admin", "limited"),
    "admin": ("admin", "limited"),
    "visitor": ("visitor",),
    "agent_or_visitor": ("admin", "limited", "visitor"),
}
#: Operations after whose cases the credentials are put back.
RESTORE_AFTER = {
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/sessions/end-all"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("PATCH", "/api/v1/agents/{agent_id}"),
}


class Identities:
    """The run's credentials: headers per identity, and a way to restore them."""

    def __init__(self, api: ApiClient) -> None:
        self.app = api.app
        admin_token = api.post("/api/v1/tokens", json={"name": "schemathesis",
                                                   "scope": "admin"}).get_json()
        limited = api.new_agent(email="limited@example.com", name="赵客服", scope="self")
        limited_token = limited.post("/api/v1/tokens", json={"name": "st",
                                                           "scope": "admin"}).get_json()
        session = self.app.test_client().post("/api/v1/widget/session",
                                              json={"team_id": api.team["id"]}).get_json()
        self.agents = {api.agent["id"]: ("admin", "all"),
                       limited.agent["id"]: ("agent", "self")}
        self.token_ids = [admin_token["id"], limited_token["id"]]
        self.headers: dict[str, dict[str, str]] = {
            "nobody": {},
            "admin": {"Authorization": f"Bearer {admin_token['token']}"},
            "limited": {"Authorization": f"Bearer {limited_token['token']}"},
            "visitor": {"X-Visitor-Token": session["token"]},
        }

    def restore(self) -> None:
        """Accounts active with their role and scope, the run's tokens valid."""
        from meiqia.models import Agent
        from meiqia.models import ApiToken

        with self.app.app_context():
            for agent_id, (role, scope) in self.agents.items():
                Agent.update(active=True, role=role, scope=scope).where(
                    Agent.id == agent_id).execute()
            ApiToken.update(revoked_at=None).where(ApiToken.id.in_(self.token_ids)).execute()


def test_no_request_the_openapi_document_allows_gets_a_5xx(db_api: ApiClient):
    api = db_api
    app = api.app
    who = Identities(api)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    client = ClosingClient(app, app.response_class)
    failures: list[str] = []
    tried: set[tuple[str, str, str]] = set()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        auth = _auth_of(app, key)
        restore = who.restore if key in RESTORE_AFTER else None
        for identity in IDENTITIES[auth]:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode)
                run(strategy, (*key, identity), who.headers[identity], failures, client,
                    restore)
            tried.add((*key, identity))
    assert not failures, "\n".join(failures)
    documented = {(op.method.upper(), op.path) for op in operations}
    assert {(m, p) for m, p, _ in tried} == documented
    # Every route and method of the document (schemathesis leaves out the document itself).
    paths = api.get("/api/v1/openapi.json").get_json()["paths"]
    assert documented | {("GET", "/api/v1/openapi.json")} == {
        (m.upper(), p) for p, item in paths.items() for m in item}
    assert len(documented) > 90
    assert {i for _, _, i in tried} == {"nobody", "admin", "limited", "visitor"}


def _auth_of(app: Any, key: tuple[str, str]) -> str:
    from meiqia.web.api.openapi import _path

    for op in API_OPERATIONS:
        if (op.method.upper(), _path(op.rule)[0]) == key:
            return op.auth
    raise AssertionError(f"{key} is in the document but not declared")


class ClosingClient(FlaskClient):
    """A test client that remembers its responses, so they can be closed.

    schemathesis's WSGI transport reads a response but never closes it, which
    leaves ``send_file`` handles open (a ResourceWarning, an error under our
    warning filter) and skips the views' ``call_on_close`` clean-up.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[Any] = []

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        self.opened.append(response)
        return response

    def close_all(self) -> None:
        while self.opened:
            self.opened.pop().close()


def run(strategy, key: tuple[str, ...], headers: dict, failures: list[str],  # noqa: ANN001
        client: ClosingClient, restore: Any = None) -> None:
    """Draw ``EXAMPLES`` cases of one operation and send each; collect the 5xx."""

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def exercise(case) -> None:  # noqa: ANN001 - a schemathesis Case
        try:
            response = case.call(headers=headers, session=client)
        except Exception as exc:  # noqa: BLE001 - unhandled in the app: a 500 in production
            failures.append(f"{key} -> raised {type(exc).__name__}: {exc}\n  "
                            f"{case.as_curl_command()}")
            return
        finally:
            client.close_all()
            if restore is not None:
                restore()
        if response.status_code >= 500:
            failures.append(f"{key} -> {response.status_code}: {case.as_curl_command()}"
                            f"\n  {response.text[:300]}")

    exercise()

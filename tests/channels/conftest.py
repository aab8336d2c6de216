"""Fixtures of the channel runtime's tests: an app with the stand-in channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.channels import standin
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient

CONFIG = {"endpoint": "https://example.com/hook", "api_key": "s3cret-key"}


def enable(app: Any, team_id: int, config: dict | None = None) -> None:
    """Enable the stand-in for a team as an admin would (the service, no UI)."""
    from meiqia.db import connection
    from meiqia.models import Agent
    from meiqia.services import channels as channel_admin

    with app.app_context(), connection():
        admin = Agent.select().where(Agent.team == team_id, Agent.role == "admin").first()
        channel_admin.configure(admin, "standin", {"enabled": True,
                                                   "config": config or CONFIG})


@pytest.fixture(params=["sqlite", "postgres"])
def ch_app(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    """An app with the stand-in channel, on SQLite then PostgreSQL."""
    if request.param == "sqlite":
        app = make_app(tmp_path, plugins=(standin,))
    else:
        url = request.getfixturevalue("pg_database_url")
        app = make_app(tmp_path, plugins=(standin,), DATABASE_URL=url)
        truncate_all(url)
    with app.app_context():
        yield app
    close_app(app)


@pytest.fixture
def ch_api(ch_app: Any) -> ApiClient:
    api = ApiClient.registered(ch_app)
    enable(ch_app, api.team["id"])
    return api

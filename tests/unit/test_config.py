"""Configuration order and validation: defaults, instance file, environment."""

from __future__ import annotations

import pytest

from meiqia import create_app
from meiqia.config import ConfigError


def test_defaults_give_sqlite_in_instance(tmp_path, monkeypatch):
    monkeypatch.delenv("MEIQIA_DATABASE_URL", raising=False)
    app = create_app(instance_path=str(tmp_path / "inst"))
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path}/inst/meiqia.sqlite3"
    assert app.config["MAX_IMAGE_BYTES"] == 5 * 1024 * 1024
    assert app.extensions["meiqia.hub"].kind == "memory"
    assert app.extensions["meiqia.jobs"].kind == "thread"
    # The generated secret key is kept in the instance folder and reused.
    key = (tmp_path / "inst" / "secret_key").read_text()
    assert app.config["SECRET_KEY"] == key
    again = create_app(instance_path=str(tmp_path / "inst"))
    assert again.config["SECRET_KEY"] == key


def test_instance_file_then_environment(tmp_path, monkeypatch):
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "config.py").write_text("TRUSTED_PROXIES = 1\nLANGUAGE = 'en'\n")
    monkeypatch.setenv("MEIQIA_TRUSTED_PROXIES", "2")
    app = create_app(instance_path=str(inst))
    assert app.config["TRUSTED_PROXIES"] == 2  # env wins over the file
    assert app.config["LANGUAGE"] == "en"  # the file wins over defaults


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("MEIQIA_MAX_FILE_BYTES", "fifty", "MAX_FILE_BYTES: expected a whole number"),
        ("MEIQIA_TRUSTED_PROXIES", "-1", "TRUSTED_PROXIES: must not be negative"),
        ("MEIQIA_JOBS_INLINE", "maybe", "JOBS_INLINE: expected true or false"),
        ("MEIQIA_DATABASE_URL", "mysql://x/y", "DATABASE_URL: unsupported scheme"),
        ("MEIQIA_DATABASE_URL", "postgresql://host/", "DATABASE_URL: postgresql URL needs"),
        ("MEIQIA_REDIS_URL", "http://x", "REDIS_URL: expected redis://"),
        ("MEIQIA_LANGUAGE", "fr", "LANGUAGE: expected zh-CN or en"),
        ("MEIQIA_AGENT_AWAY_OPEN_CHATS", "drop", "AGENT_AWAY_OPEN_CHATS: expected one of "
                                                 "requeue, keep"),
        ("MEIQIA_AGENT_AWAY_GRACE_SECONDS", "-5", "AGENT_AWAY_GRACE_SECONDS: must not be"),
        ("MEIQIA_AGENT_HEARTBEAT_SECONDS", "0", "AGENT_HEARTBEAT_SECONDS: must be positive"),
    ],
)
def test_malformed_values_name_the_key(tmp_path, monkeypatch, key, value, words):
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        create_app(instance_path=str(tmp_path / "inst"))
    assert words in str(info.value)


def test_redis_url_switches_hub_and_queue(tmp_path, redis_url):
    app = create_app(
        {"REDIS_URL": redis_url, "SECRET_KEY": "x"}, instance_path=str(tmp_path / "i")
    )
    try:
        assert app.extensions["meiqia.hub"].kind == "redis"
        assert app.extensions["meiqia.jobs"].kind == "rq"
    finally:
        app.extensions["meiqia.hub"].close()

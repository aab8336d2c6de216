"""zh-CN and English for the pages, chosen per request.

Order: ``?lang=``, the ``lang`` cookie, the agent's preference, the browser's
Accept-Language, the team default. Catalogues are plain dicts per area
(``CATALOG`` here; areas add theirs with ``add``) so a missing translation
falls back to English, then to the key.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask import current_app
from flask import request

LANGUAGES = ("zh-CN", "en")

CATALOG: dict[str, dict[str, str]] = {
    "zh-CN": {
        "app.name": "美洽客服",
        "login.title": "登录",
        "login.email": "邮箱",
        "login.password": "密码",
        "login.submit": "登录",
        "login.no_account": "还没有团队？",
        "login.register": "注册团队",
        "register.title": "注册团队",
        "register.team": "团队名称",
        "register.name": "你的姓名",
        "register.submit": "创建团队并登录",
        "register.closed": "注册已关闭，请联系管理员为你创建账号。",
        "nav.logout": "退出",
        "nav.api": "API 文档",
        "home.welcome": "欢迎，{name}",
        "home.team": "团队：{team}",
        "error.title": "出错了",
        "lang.switch": "English",
    },
    "en": {
        "app.name": "Meiqia Support",
        "login.title": "Log in",
        "login.email": "Email",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.no_account": "No team yet?",
        "login.register": "Register a team",
        "register.title": "Register a team",
        "register.team": "Team name",
        "register.name": "Your name",
        "register.submit": "Create team and log in",
        "register.closed": "Registration is closed: ask an admin for an account.",
        "nav.logout": "Log out",
        "nav.api": "API docs",
        "home.welcome": "Welcome, {name}",
        "home.team": "Team: {team}",
        "error.title": "Something went wrong",
        "lang.switch": "中文",
    },
}


def add(catalog: dict[str, dict[str, str]]) -> None:
    """Merge an area's strings into the catalogue."""
    for lang, strings in catalog.items():
        CATALOG.setdefault(lang, {}).update(strings)


def pick_language() -> str:
    asked = request.args.get("lang") or request.cookies.get("lang")
    if asked in LANGUAGES:
        return asked
    from meiqia.web.security import session_agent

    agent = session_agent()
    if agent is not None:
        pref = (agent.preferences or {}).get("language")
        if pref in LANGUAGES:
            return pref
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    if best in ("zh-CN", "zh"):
        return "zh-CN"
    if best == "en":
        return "en"
    return current_app.config["LANGUAGE"]


def language() -> str:
    if "meiqia.lang" not in request.environ:
        request.environ["meiqia.lang"] = pick_language()
    return request.environ["meiqia.lang"]


def t(key: str, **values: Any) -> str:
    lang = language()
    text = CATALOG.get(lang, {}).get(key) or CATALOG["en"].get(key) or key
    return text.format(**values) if values else text


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(t=t, language=language)

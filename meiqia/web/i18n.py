"""zh-CN and English for the pages, chosen per request.

Order: ``?lang=``, the ``lang`` cookie, the agent's preference, the browser's
Accept-Language, the team default. Catalogues are plain dicts per area
(``CATALOG`` here; areas add theirs with ``add``) so a missing translation
falls back to English, then to the key.
"""

from __future__ import annotations

from typing import Any

import peewee
from flask import Flask
from flask import current_app
from flask import request
from flask import session

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


#: The header (or ``lang`` query parameter, for websockets) our pages and the
#: widget send with every API call: the language of the page that will show an error.
LANG_HEADER = "X-Meiqia-Lang"


def normalise(code: str | None) -> str | None:
    """``zh``, ``zh-cn``, ``zh-Hans`` → ``zh-CN``; ``en-US`` → ``en``; else None."""
    code = (code or "").strip().lower()
    if code.startswith("zh"):
        return "zh-CN"
    if code.startswith("en"):
        return "en"
    return None


def error_language(agent_preference: bool = True) -> str:
    """The language of this request's error messages (API JSON, socket frames).

    The page or widget that asked says it (``X-Meiqia-Lang`` or ``?lang=``); else
    the ``lang`` cookie; else the setting of the agent making the request (his
    browser session, or the API token he came with); else the browser's
    Accept-Language. Not the team default, unlike pages: a script or integration
    that says nothing gets English, so code that reads messages is unaffected. ``agent_preference=False`` skips the
    steps that may read the database (for the answer that says it is down).
    """
    for asked in (request.headers.get(LANG_HEADER), request.args.get("lang"),
                  request.cookies.get("lang")):
        lang = normalise(asked)
        if lang:
            return lang
    agent = _requesting_agent() if agent_preference else None
    pref = (agent.preferences or {}).get("language") if agent is not None else None
    if pref in LANGUAGES:
        return pref
    # Best first; a bare "*" (Node's fetch sends one) names no language.
    for value, _quality in request.accept_languages:
        lang = normalise(value)
        if lang:
            return lang
    return "en"


def _requesting_agent() -> Any:
    """The agent this request came from, if the request already said who (an API
    token resolved by ``current_actor``) or carries a browser session."""
    agent = request.environ.get("meiqia.token_agent")
    if agent is not None:
        return agent
    if not session.get("sid"):
        return None
    from meiqia.web.security import session_agent

    try:
        return session_agent()
    except peewee.PeeweeException:  # the refusal still goes out, in English
        return None


def text_in(lang: str, key: str, **values: Any) -> str:
    """A string in a given language, outside a request (a job writing an export for
    the agent who asked, an e-mail for the team): English fills a gap, then the key."""
    text = CATALOG.get(lang, {}).get(key) or CATALOG["en"].get(key) or key
    return text.format(**values) if values else text


def agent_language(agent: Any) -> str:
    """An agent's language when no request says it: his setting, else his team's."""
    pref = (getattr(agent, "preferences", None) or {}).get("language")
    if pref in LANGUAGES:
        return pref
    team = getattr(agent, "team", None)
    return "en" if getattr(team, "language", "") == "en" else "zh-CN"


def t(key: str, **values: Any) -> str:
    return text_in(language(), key, **values)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(t=t, language=language)

"""The web layer: blueprints for pages, the JSON API, websockets and health.

Views parse the request, call a service, and render; they never run SQL of
their own (DESIGN §2). Every module of this package that has ``init_app(app)``
is initialised, and every one that has a blueprint ``bp`` is registered, so a
new page area is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

#: Set up first, in this order: languages, sessions and CSRF.
FIRST = ("i18n", "security")


class DatabaseIntConverter(IntegerConverter):
    """``<int:…>`` matching only what a database id column holds (up to 2**31 - 1).

    A larger number in a URL is a 404 like any unknown id, instead of an
    overflow error in the database driver (a 500).
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def register_web(app: Flask) -> None:
    app.url_map.converters["int"] = DatabaseIntConverter
    names = [info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
    ordered = [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)
    for name in ordered:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "init_app"):
            module.init_app(app)
        elif hasattr(module, "bp"):
            app.register_blueprint(module.bp)

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


def digits_up_to(limit: int) -> str:
    """A regular expression of the ASCII numbers from 0 to ``limit`` (leading zeros
    allowed): ``digits_up_to(2**31 - 1)`` matches ``2147483647``, not ``2147483648``."""
    top = str(limit)
    rest = len(top) - 1
    alternatives = [f"[0-9]{{1,{rest}}}"] if rest else []
    for i, digit in enumerate(top):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            tail = len(top) - i - 1
            alternatives.append(top[:i] + f"[{low}-{int(digit) - 1}]"
                                + (f"[0-9]{{{tail}}}" if tail else ""))
    alternatives.append(top)
    return "0*(?:" + "|".join(alternatives) + ")"


class DatabaseIntConverter(IntegerConverter):
    """``<int:…>`` matching only what a database id column holds (up to 2**31 - 1).

    A larger number in a URL is a 404 like any unknown id, instead of an
    overflow error in the database driver (a 500). The bound is in the regular
    expression, so such a segment matches no rule at all: checked after the match
    (``max=``), Werkzeug had already passed the same path's rules for other methods
    and answered 405 "method not allowed" to a PATCH on ``/tickets/2147483648``
    (docs/security.md §10). Only ASCII digits: ``\\d`` also takes ``１２``.
    """

    regex = digits_up_to(2**31 - 1)

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

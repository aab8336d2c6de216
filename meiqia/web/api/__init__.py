"""The JSON API at ``/api/v1`` (DESIGN §9).

Every route is declared with ``route``, which registers it on the blueprint,
checks who is asking, validates the body against its schema, and records the
operation for the OpenAPI document, so documentation and behaviour come from
one declaration. Errors are ``{"error": {"code", "message", "field"}}``, the
message in the language the request asks for (``error_response``).

Each area is a module of this package that imports ``route``; every module of
the package is imported at start-up, so a new area needs no registration.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import g
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException

from meiqia.services.accounts import require_admin
from meiqia.services.errors import ServiceError
from meiqia.services.validation import check
from meiqia.services.validation import parse_int
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web.security import current_actor
from meiqia.web.security import current_visitor

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def areas() -> list[str]:
    """Modules of this package that declare routes (all of them)."""
    import pkgutil

    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


@dataclass
class Operation:
    rule: str
    method: str
    endpoint: str
    summary: str
    auth: str
    tags: list[str]
    body: dict | None = None
    query: dict | None = None
    response: dict | None = None
    status: int = 200
    description: str = ""
    form: dict | None = None
    extra: dict = field(default_factory=dict)


OPERATIONS: list[Operation] = []

AUTH_KINDS = ("none", "agent", "admin", "visitor", "agent_or_visitor")


def route(
    rule: str,
    methods: tuple[str, ...] = ("GET",),
    *,
    summary: str,
    auth: str = "agent",
    body: dict | None = None,
    query: dict | None = None,
    response: dict | None = None,
    status: int = 200,
    tags: list[str] | None = None,
    description: str = "",
    form: dict | None = None,
) -> Callable:
    """Declare an API route.

    ``auth``: ``none``, ``agent`` (session or token; sets ``g.actor``),
    ``admin``, ``visitor`` (visitor token; sets ``g.visitor``) or
    ``agent_or_visitor``. With ``body``, the JSON body is validated and passed
    as the ``body`` keyword argument. ``form`` documents a multipart/form-data
    body the view reads (and checks) itself, e.g. a streamed upload.
    """
    if auth not in AUTH_KINDS:
        raise ValueError(f"unknown auth kind {auth!r}")

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _authenticate(auth)
            if body is not None:
                kwargs["body"] = check(json_body(), body)
            result = view(*args, **kwargs)
            if isinstance(result, dict | list):
                response_obj = jsonify(result)
                response_obj.status_code = status
                return response_obj
            return result

        # Module-qualified, so two areas may both have e.g. ``send``.
        endpoint = f"{view.__module__.rsplit('.', 1)[-1]}_{view.__name__}"
        bp.add_url_rule(rule, endpoint, wrapper, methods=list(methods))
        for method in methods:
            OPERATIONS.append(
                Operation(
                    rule=rule,
                    method=method.lower(),
                    endpoint=endpoint,
                    summary=summary,
                    auth=auth,
                    tags=tags or [view.__module__.rsplit(".", 1)[-1]],
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    description=description or (view.__doc__ or "").strip(),
                    form=form,
                )
            )
        return wrapper

    return decorator


def _authenticate(auth: str) -> None:
    if auth == "none":
        return
    if auth in {"agent", "admin"}:
        g.actor = current_actor()
        if auth == "admin":
            require_admin(g.actor)
        return
    if auth == "visitor":
        g.visitor = current_visitor()
        return
    if request.headers.get("X-Visitor-Token") or request.args.get("token"):
        g.actor = None
        g.visitor = current_visitor()
    else:
        g.visitor = None
        g.actor = current_actor()


def json_body() -> Any:
    """The request's JSON, or a 400 that says what is wrong with it."""
    if not request.is_json:
        raise ServiceError("send a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise ServiceError("the body is not valid JSON")
    return data


def query_int(name: str, default: int, minimum: int = 0, maximum: int = 10**9) -> int:
    """An integer query parameter, or a clear 422."""
    return parse_int(request.args.get(name), name, default, minimum, maximum)


def error_response(exc: ServiceError) -> Any:
    """The JSON of a refused request, its message in the asker's language
    (``web.error_text``; English for clients that name none)."""
    response = jsonify(_localised(exc.to_dict()))
    response.status_code = exc.status
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(int(retry_after))
    return response


def _localised(body: dict) -> dict:
    """``body`` with ``error.message`` translated (``message_en`` then keeps the
    original). Only error responses come here: successes never pay for it."""
    return {**body, "error": error_text.localise(body["error"], i18n.error_language())}


def init_app(app: Flask) -> None:
    for area in areas():
        importlib.import_module(f"{__name__}.{area}")
    app.register_blueprint(bp)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        if request.path.startswith("/api/"):
            return error_response(exc)
        from flask import render_template

        # A page's error in the page's language, like the rest of the page.
        message = error_text.translate(exc.message, i18n.language())
        return render_template("error.html", error=exc, message=message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(_localised(
            {"error": {"code": code, "message": exc.description, "field": None}}
        ))
        response.status_code = exc.code or 500
        return response

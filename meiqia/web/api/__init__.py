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
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import RequestEntityTooLarge

from meiqia.services import safe_json
from meiqia.services.accounts import require_admin
from meiqia.services.errors import ServiceError
from meiqia.services.errors import TooLarge
from meiqia.services.validation import INT_MAX
from meiqia.services.validation import check
from meiqia.services.validation import check_query
from meiqia.services.validation import parse_int
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web.api._responses import RESPONSES
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
    #: A successful answer that is not JSON (a file): its media types, each with
    #: its schema; None: JSON of ``response``.
    content: dict | None = None
    extra: dict = field(default_factory=dict)
    #: The API-token scope this operation needs, or None: tokens refused.
    token_scope: str | None = "read"


OPERATIONS: list[Operation] = []

#: The query of both message lists (agents' and the widget's): where to resume.
AFTER_QUERY = {"type": "object", "properties": {
    "after": {"type": "integer", "minimum": 0,
              "description": "a message id: messages with a higher id"},
    "after_seq": {"type": "integer", "minimum": 0,
                  "description": "a position: messages with a higher seq "
                  "(docs/protocol.md, Positions and resume)"}}}

#: Token scopes, each allowing what the ones before it allow (docs/security.md §8).
TOKEN_SCOPE_ORDER = ("read", "conversations", "admin")
#: Areas whose writes are an agent's daily work: a ``conversations`` token may do
#: them. Writes elsewhere (team, agents, groups, knowledge base, bot, sinks,
#: sidebar plugins) need ``admin``. Reads need ``read``.
CONVERSATION_AREAS = {"conversations", "tickets", "uploads", "quick_replies", "exports",
                      "history"}
#: ``tokens=`` of ``route``: derive the scope from the method and area.
AUTO = "auto"

AUTH_KINDS = ("none", "agent", "admin", "visitor", "agent_or_visitor")

#: What a view's return annotation says its JSON body is.
_RETURNS = {"list": "array", "dict": "object"}
#: A file's body, whatever its media type.
FILE = {"type": "string", "format": "binary"}
#: The media types of the spreadsheets we write.
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _response_schema(view: Callable, rule: str, response: dict | None) -> dict | None:
    """The schema of the view's JSON body: ``response`` as declared, checked against
    the view's return annotation (a view that returns a ``list`` may not be
    documented as an object, nor a ``dict`` as an array); undeclared, an array of
    objects for a ``list`` view (None: the document's default, an object)."""
    returns = getattr(view, "__annotations__", {}).get("return")
    name = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
    kind = _RETURNS.get(str(name).split("[", 1)[0].strip())
    if response is None:
        return {"type": "array", "items": {"type": "object"}} if kind == "array" else None
    declared = response.get("type")
    if kind is not None and declared is not None and declared != kind:
        raise ValueError(f"{rule}: {view.__name__} returns {name} but its response is "
                         f"declared as {declared}")
    return response


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
    content: dict | None = None,
    tokens: str | None = AUTO,
) -> Callable:
    """Declare an API route.

    ``auth``: ``none``, ``agent`` (session or token; sets ``g.actor``),
    ``admin``, ``visitor`` (visitor token; sets ``g.visitor``) or
    ``agent_or_visitor``. With ``body``, the JSON body is validated and passed
    as the ``body`` keyword argument. ``form`` documents a multipart/form-data
    body the view reads (and checks) itself, e.g. a streamed upload.

    ``response``: the schema of the JSON body (else ``_responses.RESPONSES`` of the
    operation id, ``<area>_<view name>``); a view annotated ``-> list`` is an
    array (of objects unless ``response`` says more) and may not be declared as an
    object (``_response_schema``). ``content``: for a view that answers a file,
    its media types and their schemas (``{CSV: FILE, XLSX: FILE}``).

    ``tokens``: the API-token scope the route needs (``read``,
    ``conversations``, ``admin``), None to refuse tokens (managing tokens and
    sessions), or ``auto``: ``read`` for GET, ``conversations`` for writes in
    CONVERSATION_AREAS, ``admin`` for other writes. Checked here, for every
    route, so no view can forget it.
    """
    if auth not in AUTH_KINDS:
        raise ValueError(f"unknown auth kind {auth!r}")

    def decorator(view: Callable) -> Callable:
        area = view.__module__.rsplit(".", 1)[-1]
        # Module-qualified, so two areas may both have e.g. ``send``.
        endpoint = f"{area}_{view.__name__}"
        documented = _response_schema(view, rule, response or RESPONSES.get(endpoint))
        scopes = {m: _token_scope(tokens, m, area, auth) for m in methods}

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _authenticate(auth)
            _check_token_scope(scopes.get(request.method, scopes.get("GET")))
            if query is not None:
                check_query(request.args, query)
            if body is not None:
                kwargs["body"] = check(json_body(), body)
            result = view(*args, **kwargs)
            if isinstance(result, dict | list):
                response_obj = jsonify(result)
                response_obj.status_code = status
                return response_obj
            return result

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
                    response=documented,
                    status=status,
                    description=description or (view.__doc__ or "").strip(),
                    form=form,
                    content=content,
                    token_scope=scopes[method],
                )
            )
        return wrapper

    return decorator


def _token_scope(tokens: str | None, method: str, area: str, auth: str = "agent") -> str | None:
    """``auto``: GET needs ``read``; a write needs ``admin`` when only admins may make
    it (``auth="admin"``: team settings, whatever area it sits in, such as the
    grading rules among the history routes), else ``conversations`` in
    CONVERSATION_AREAS and ``admin`` elsewhere."""
    if tokens != AUTO:
        if tokens is not None and tokens not in TOKEN_SCOPE_ORDER:
            raise ValueError(f"unknown token scope {tokens!r}")
        return tokens
    if method.upper() in {"GET", "HEAD"}:
        return "read"
    if auth == "admin":
        return "admin"
    return "conversations" if area in CONVERSATION_AREAS else "admin"


def token_allows(token_scope: str, needed: str | None) -> bool:
    """May a token of ``token_scope`` call an operation that needs ``needed``?"""
    if needed is None or token_scope not in TOKEN_SCOPE_ORDER:
        return False
    return TOKEN_SCOPE_ORDER.index(token_scope) >= TOKEN_SCOPE_ORDER.index(needed)


def _check_token_scope(needed: str | None) -> None:
    """Refuse a token-authenticated request its token's scope does not cover."""
    from meiqia.services.errors import Forbidden
    from meiqia.web.security import plugin_of_request
    from meiqia.web.security import token_scope_of_request

    scope = token_scope_of_request()
    if scope is None:
        return  # a session, a visitor or nobody
    plugin = plugin_of_request()  # signed in by a plugin (single sign-on), not a token
    if needed is None:
        if plugin is not None:
            raise Forbidden(f"a request signed in by plugin {plugin} may not do this: "
                            "sign in with your password")
        raise Forbidden("API tokens may not do this: sign in with your password")
    if not token_allows(scope, needed):
        if plugin is not None:
            raise Forbidden(f"the scope plugin {plugin} gave this request ({scope}) does "
                            f"not allow this: it needs {needed}")
        raise Forbidden(f"this API token's scope ({scope}) does not allow this: "
                        f"it needs {needed}")


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
    """The request's JSON, or a clear 4xx: the one reader of every API body.

    Bounded before it is parsed (``services.safe_json``): a declared length over
    ``MAX_JSON_BYTES`` is a 413 without reading a byte, a body without a length
    (chunked) is read only one byte past the limit; then nesting depth, UTF-8,
    JSON, and NUL or lone surrogates in any string (422 naming the field).
    """
    if not request.is_json:
        raise ServiceError("send a JSON body with Content-Type: application/json")
    limit = current_app.config["MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the JSON body may be at most {limit} bytes")
    if request.content_length is None:
        raw = request.stream.read(limit + 1)
    else:
        raw = request.get_data(cache=True)
    if not raw:
        raise ServiceError("the body is not valid JSON")
    return safe_json.loads_body(raw, limit)


def query_int(name: str, default: int, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """An integer query parameter, or a clear 422 (by default a database integer,
    the bound ``check_query`` and the document give an undeclared maximum)."""
    return parse_int(request.args.get(name), name, default, minimum, maximum)


def error_response(exc: ServiceError) -> Any:
    """The JSON of a refused request, its message in the asker's language
    (``web.error_text``; English for clients that name none)."""
    response = jsonify(_localised(exc.to_dict()))
    response.status_code = exc.status
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(int(retry_after))
    elif exc.status == 503:
        # Every 503 says when to try again (docs/protocol.md, "Outages"): a privacy
        # hook that could not check a message had none (a docs-only plugin author).
        from meiqia.web.unavailable import RETRY_AFTER

        response.headers["Retry-After"] = RETRY_AFTER
    return response


def _too_large_body() -> TooLarge:
    """Werkzeug's 413 (a body over MAX_CONTENT_LENGTH, a form over Flask's form
    limits) as our refusal: code ``too_large`` as the OpenAPI document says, in
    our words and the asker's language, not ``request_entity_too_large`` in
    Werkzeug's English."""
    from meiqia.services.uploads import human_size

    limit = request.max_content_length
    if limit and (request.content_length is None or request.content_length > limit):
        return TooLarge(f"the request body may be at most {human_size(limit)}")
    return TooLarge("the request is too large")


def _localised(body: dict) -> dict:
    """``body`` with ``error.message`` translated (``message_en`` then keeps the
    original). Only error responses come here: successes never pay for it."""
    return {**body, "error": error_text.localise(body["error"], i18n.error_language(),
                                                 error_text.subject_of(request.path),
                                                 _path_labels())}


def _path_labels() -> dict[str, str]:
    """The labels of the matched route's path parameters (``error_text.PATH_LABELS``)."""
    rule = request.url_rule
    return error_text.path_labels(rule.rule if rule is not None else None)


#: Where the caller is a program, not a person with a page: errors are JSON in the
#: caller's language (English unless it names one). ``/channels/`` holds channel
#: plugins' callback URLs (a gateway's webhook got an HTML page in Chinese).
MACHINE_PATHS = ("/api/", "/channels/")


def init_app(app: Flask) -> None:
    for area in areas():
        importlib.import_module(f"{__name__}.{area}")
    app.register_blueprint(bp)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        if request.path.startswith(MACHINE_PATHS):
            return error_response(exc)
        from flask import render_template

        # A page's error in the page's language, like the rest of the page.
        message = error_text.translate(exc.message, i18n.language(), None, _path_labels())
        return render_template("error.html", error=exc, message=message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith(MACHINE_PATHS):
            if (exc.code or 500) < 400:
                return exc  # a redirect (a missing trailing slash), not an error
            from flask import render_template

            # A person reads it: our page in his language, not Werkzeug's English one.
            message = error_text.translate(exc.description or "", i18n.language())
            response = exc.get_response()
            response.set_data(render_template("error.html", error=exc, message=message))
            response.mimetype = "text/html"
            return response
        if isinstance(exc, RequestEntityTooLarge):
            return error_response(_too_large_body())
        code = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(_localised(
            {"error": {"code": code, "message": exc.description, "field": None}}
        ))
        response.status_code = exc.code or 500
        for name, value in exc.get_headers():  # a 405's Allow (RFC 9110 §15.5.6)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

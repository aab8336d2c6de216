"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document, built from ``route``."""

from __future__ import annotations

import re
from typing import Any

from meiqia import __version__
from meiqia.services import safe_json
from meiqia.web.api import OPERATIONS
from meiqia.web.api import route
from meiqia.web.api._responses import COMPONENTS

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string", "description":
                            "In the language the request asks for (X-Meiqia-Lang "
                            "header or ?lang=, else Accept-Language; English if none)."},
                "field": {"type": ["string", "null"]},
                "message_en": {"type": "string", "description":
                               "The English original, only when `message` was translated."},
            },
        }
    },
}

SECURITY = {
    "agent": [{"session": [], "csrf": []}, {"token": []}],
    "admin": [{"session": [], "csrf": []}, {"token": []}],
    "visitor": [{"visitor": []}],
    "agent_or_visitor": [{"session": []}, {"token": []}, {"visitor": []}],
    "none": [],
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": ERROR_SCHEMA}}}


def _path(rule: str) -> tuple[str, list[dict]]:
    params = []

    def repl(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        schema = {"type": "integer"} if converter == "int" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    path = re.sub(r"<(?:(\w+):)?(\w+)>", repl, rule)
    return "/api/v1" + path, params


def document() -> dict[str, Any]:
    """Build the document from every declared operation."""
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        path, params = _path(op.rule)
        if op.query:
            for name, schema in op.query.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in op.query.get("required", []),
                        # Empty is absent (``check_query``): ``?to=`` is the default.
                        "allowEmptyValue": True,
                        "schema": schema,
                    }
                )
        item: dict[str, Any] = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "tags": op.tags,
            "parameters": params,
            "security": SECURITY[op.auth],
            # The API-token scope needed (docs/security.md §8); null: tokens refused.
            "x-token-scope": op.token_scope if op.auth in {"agent", "admin",
                                                           "agent_or_visitor"} else None,
            "responses": {
                str(op.status): {
                    "description": "OK",
                    "content": ({media: {"schema": schema} for media, schema in
                                 op.content.items()} if op.content else
                                {"application/json": {"schema": op.response or
                                                      {"type": "object"}}}),
                },
                "422": _error("A parameter or field is invalid (`invalid`, `field` names "
                              "it): wrong type, out of range, a date outside 1900-01-01.."
                              "9998-12-31, or text holding a NUL or a lone surrogate "
                              "(in the query, the path or the body)."),
                "4XX": _error("The request was refused; the message says why."),
            },
        }
        if op.body is not None or op.form is not None:
            item["responses"]["400"] = _error(
                "The body could not be read: not JSON (`bad_request`), not UTF-8, or nested "
                f"deeper than {safe_json.MAX_DEPTH} levels (`too_deep`).")
            item["responses"]["413"] = _error(
                "The body is too large (`too_large`): a JSON body over MAX_JSON_BYTES "
                "(1 MiB by default), an upload over its limit.")
        if op.description:
            item["description"] = op.description
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": op.body}},
            }
        if op.form is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": op.form}},
            }
        paths.setdefault(path, {})[op.method] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meiqia API",
            "version": __version__,
            "description": "JSON API of meiqia. Agents authenticate with the session "
            "cookie plus X-CSRF-Token on writes, or Authorization: Bearer <token>; "
            "a token's scope (read, conversations, admin) must cover the operation's "
            "x-token-scope (null: only a signed-in session may call it); "
            "visitors with X-Visitor-Token. Error messages are English unless the "
            "request asks for zh-CN (X-Meiqia-Lang: zh-CN, ?lang=zh-CN or "
            "Accept-Language); code and field never change. Bad input is a 4xx, never a "
            "5xx: a JSON body is at most MAX_JSON_BYTES (1 MiB by default; 413 "
            "`too_large`) and 32 levels deep (400 `too_deep`); NaN and Infinity are not "
            "JSON (400); a NUL or a lone surrogate in any string, key, query or path "
            "parameter is a 422 `invalid` naming the field; dates in filters lie within "
            "1900-01-01..9998-12-31 (422). An empty query parameter (`?to=`) is the same "
            "as one left out: the operation's default applies.",
        },
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer"},
                "visitor": {"type": "apiKey", "in": "header", "name": "X-Visitor-Token"},
            }
        },
        "paths": dict(sorted(paths.items())),
    }


@route("/openapi.json", summary="This OpenAPI document", auth="none", tags=["meta"],
       response={"type": "object", "required": ["openapi", "info", "paths", "components"],
                 "properties": {"openapi": {"type": "string"}, "info": {"type": "object",
                                "properties": {"description": {"type": "string"},
                                               "title": {"type": "string"},
                                               "version": {"type": "string"}}},
                                "paths": {"type": "object", "additionalProperties": {
                                    "type": "object"}},
                                "components": {"type": "object", "properties": {
                                    "schemas": {"type": "object"},
                                    "securitySchemes": {"type": "object"}}}}})
def openapi_json() -> dict[str, Any]:
    return document()

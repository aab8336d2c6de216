"""Text in URLs and forms must be text: one check before every view.

Werkzeug decodes query strings, paths and url-encoded forms with
``errors="replace"``, so bytes that are not UTF-8 (a lone surrogate spelt
``%ED%A0%80``) arrive as U+FFFD and are harmless. ``%00`` is not: a NUL reaches
the view as a real character, and PostgreSQL refuses it in any text (a search,
a login email), which raised inside the driver (a 500). JSON bodies and socket
frames are checked by ``services.safe_json``; this hook covers the rest: query
parameters (every route, the websocket handshakes too), path parameters and
url-encoded form fields (the login and register pages). Multipart bodies are
left to the upload routes, which stream them and check their one text field.

A refusal is a 422 (``invalid``) naming the parameter: JSON under ``/api/``,
the error page elsewhere, in the reader's language (``web.error_text``).
"""

from __future__ import annotations

from flask import Flask
from flask import request

from meiqia.services import safe_json
from meiqia.services.errors import ValidationError


def check_request_text() -> None:
    """Refuse a NUL (or a lone surrogate a WSGI server let through) in any
    query parameter, path parameter or url-encoded form field."""
    pairs = list(request.args.items(multi=True))
    pairs += [(k, v) for k, v in (request.view_args or {}).items() if isinstance(v, str)]
    if request.mimetype == "application/x-www-form-urlencoded":
        pairs += list(request.form.items(multi=True))
    for name, value in pairs:
        if safe_json.not_text(name):
            raise ValidationError("a parameter name contains a NUL character or a lone "
                                  "surrogate, which is not text")
        safe_json.check_text(value, name)


def init_app(app: Flask) -> None:
    app.before_request(check_request_text)

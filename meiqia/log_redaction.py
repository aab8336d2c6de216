"""Keep secrets out of logs (issue 15, item 11).

Browsers cannot put headers on a websocket handshake or an ``<img src>``, so the
visitor token travels as ``?token=`` and some integrations send
``/ws/agent?api_token=``; access logs (werkzeug's, gunicorn's, a proxy's) write
the whole URL. Whoever reads such a log could take over a visitor's
conversation or act as the agent. ``RedactSecrets`` rewrites every record that
passes it: the values of secret query parameters (however their names are
percent-encoded), the secret of a password reset link's path, ``Bearer``
credentials and anything shaped like our API tokens become ``[redacted]``.

``install()`` applies it to every record the process makes (``create_app`` and
deploy/gunicorn.conf.py call it); docs/security.md tells operators to keep query
strings out of their reverse proxy's log too, which no code of ours can reach.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

#: Query parameters whose values are credentials.
SECRET_PARAMS = ("token", "api_token", "access_token", "renew_key", "key_token")
REDACTED = "[redacted]"

#: A query parameter: its name as written (percent-encoded or not), then its value.
_PARAM = re.compile(r"(?P<name>[?&;](?P<key>[^=&\s\"';?#]{1,64})=)(?P<value>[^&\s\"';#]+)")
_SECRET_KEYS = frozenset(SECRET_PARAMS)
_BEARER = re.compile(r"(?P<name>\bBearer\s+)[^\s\"',;]+", re.I)
_API_TOKEN = re.compile(r"\bmq_[A-Za-z0-9_\-]{16,}")
#: The one-time password reset page carries its secret in the path.
_RESET_PATH = re.compile(r"(?P<name>/reset-password/)[^/?#\s\"']+")


def _param(match: re.Match) -> str:
    """A secret parameter's value redacted, whatever the spelling of its name: the
    server decodes ``%74oken`` to ``token`` and takes it, so the log must too."""
    key = urllib.parse.unquote_plus(match.group("key")).strip().lower()
    return match.group("name") + REDACTED if key in _SECRET_KEYS else match.group(0)


def redact(text: str) -> str:
    """``text`` with every credential we know the shape of replaced."""
    if not text:
        return text
    text = _PARAM.sub(_param, text)
    text = _RESET_PATH.sub(lambda m: m.group("name") + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group("name") + REDACTED, text)
    return _API_TOKEN.sub("mq_" + REDACTED, text)


class RedactSecrets(logging.Filter):
    """A filter that redacts the formatted message of each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the handler's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_installed: list[bool] = []


def install() -> None:
    """Redact every log record of this process as it is made (idempotent).

    A record factory, not a filter on some loggers: it covers werkzeug's and
    gunicorn's access logs, our own loggers and any library's, whatever handlers
    are added later (a filter on a logger misses its children's records).
    """
    if _installed:
        return
    _installed.append(True)
    previous = logging.getLogRecordFactory()
    redactor = RedactSecrets()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)

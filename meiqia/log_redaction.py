"""Keep secrets out of logs (issue 15, item 11).

Browsers cannot put headers on a websocket handshake or an ``<img src>``, so the
visitor token travels as ``?token=`` and some integrations send
``/ws/agent?api_token=``; access logs (werkzeug's, gunicorn's, a proxy's) write
the whole URL. Whoever reads such a log could take over a visitor's
conversation or act as the agent. ``RedactSecrets`` rewrites every record that
passes it: the values of secret query parameters, ``Bearer`` credentials and
anything shaped like our API tokens become ``[redacted]``.

``install()`` applies it to every record the process makes (``create_app`` and
deploy/gunicorn.conf.py call it); docs/security.md tells operators to keep query
strings out of their reverse proxy's log too, which no code of ours can reach.
"""

from __future__ import annotations

import logging
import re

#: Query parameters whose values are credentials.
SECRET_PARAMS = ("token", "api_token", "access_token", "renew_key", "key_token")
REDACTED = "[redacted]"

_PARAM = re.compile(r"(?P<name>[?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&\s\"';]+", re.I)
_BEARER = re.compile(r"(?P<name>\bBearer\s+)[^\s\"',;]+", re.I)
_API_TOKEN = re.compile(r"\bmq_[A-Za-z0-9_\-]{16,}")


def redact(text: str) -> str:
    """``text`` with every credential we know the shape of replaced."""
    if not text:
        return text
    text = _PARAM.sub(lambda m: m.group("name") + REDACTED, text)
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

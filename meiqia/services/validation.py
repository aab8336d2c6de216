"""Validate untrusted JSON against a small JSON-Schema subset.

One schema serves two purposes: ``check`` refuses bad input with a message that
names the field, and the OpenAPI document shows the same schema, so the docs
cannot drift from what the API accepts. Supported: type (object, string,
integer, number, boolean, array, null, or a list of them), properties,
required, additionalProperties (false only; with ``"x-names": "filter"`` the
422 lists the accepted names), enum, minLength, maxLength,
pattern, format (email), minimum, maximum, items, maxItems, minItems, maxProperties; and
``x-max-reason``, why a string's ``maxLength`` is what it is, said after the
limit (``answer: at most 5000 characters (the longest chat message)``); and a
pattern's own explanation of a failure (``PATTERN_CHECKS``).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from meiqia.services.errors import ValidationError

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
#: Chinese mobile (13800138000), landline with area code (021-12345678, an
#: extension after a dash), or an international number (+8613800138000).
PHONE_RE = re.compile(
    r"^(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:-\d{1,6})?|\+[1-9]\d{6,14})$")
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "null": (type(None),),
}


#: A pattern's own explanation of a failure, by the pattern: ``(value, label, field)``
#: raises a ValidationError that says what is wrong (``teams``: a site's port out of
#: 1-65535), or returns and the value "has the wrong format". Kept out of the schema,
#: which the OpenAPI document shows as it is.
PATTERN_CHECKS: dict[str, Callable[[str, str, str | None], None]] = {}

#: The range of a database integer column (PostgreSQL ``integer``).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: A list's ``page`` query parameter, as every list declares it: the same bound in
#: the OpenAPI document, ``check_query`` and ``parse_int`` (a page past the last is
#: an empty page, not an error).
PAGE = {"type": "integer", "minimum": 1, "maximum": INT_MAX}


def _type_ok(value: Any, name: str) -> bool:
    if name in {"integer", "number"} and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _ecma_end(pattern: str) -> str:
    """A JSON-Schema pattern as ECMA-262 reads it: a final ``$`` is the end of the
    text, where Python's ``$`` also matches before a final newline (``"#fff000\\n"``
    would pass a colour pattern, and a newline in a value that becomes an HTTP
    header, such as a widget's allowed site, is a 500)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def check(value: Any, schema: dict[str, Any], path: str = "") -> Any:
    """Return ``value`` if it matches ``schema``; else raise ValidationError."""
    field = path or None
    label = path or "body"
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, name) for name in names):
            raise ValidationError(f"{label}: expected {' or '.join(names)}", field)
    if value is None:
        return value
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(c) for c in schema["enum"])
        raise ValidationError(f"{label}: must be one of {choices}", field)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            if schema.get("minLength") == 1:
                raise ValidationError(f"{label}: must not be empty", field)
            raise ValidationError(
                f"{label}: at least {schema['minLength']} characters", field
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            why_max = f" ({schema['x-max-reason']})" if schema.get("x-max-reason") else ""
            raise ValidationError(
                f"{label}: at most {schema['maxLength']} characters{why_max}", field
            )
        if "pattern" in schema and not re.search(_ecma_end(schema["pattern"]), value):
            explain = PATTERN_CHECKS.get(schema["pattern"])
            if explain is not None:
                explain(value, label, field)  # raises a refusal that says more, or not
            raise ValidationError(f"{label}: has the wrong format", field)
        if schema.get("format") == "email" and value and not EMAIL_RE.match(value):
            raise ValidationError(f"{label}: is not a valid email address", field)
    if isinstance(value, int) and not isinstance(value, bool) and not (
            INT_MIN <= value <= INT_MAX):
        # Ids and counts are database integers: a bigger number is a 422 here,
        # not an overflow inside the database driver (a 500). The bounds named are
        # the field's own where it has them ("up_to: must be between 0 and …").
        low = schema["minimum"] if isinstance(schema.get("minimum"), int) else INT_MIN
        high = schema["maximum"] if isinstance(schema.get("maximum"), int) else INT_MAX
        raise ValidationError(f"{label}: must be between {max(low, INT_MIN)} and "
                              f"{min(high, INT_MAX)}", field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ValidationError(f"{label}: must be at least {schema['minimum']}", field)
        if "maximum" in schema and value > schema["maximum"]:
            raise ValidationError(f"{label}: must be at most {schema['maximum']}", field)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            if schema["maxItems"] == 1:
                raise ValidationError(f"{label}: at most 1 item", field)
            raise ValidationError(f"{label}: at most {schema['maxItems']} items", field)
        if "minItems" in schema and len(value) < schema["minItems"]:
            if schema["minItems"] == 1:
                raise ValidationError(f"{label}: at least 1 item", field)
            raise ValidationError(f"{label}: at least {schema['minItems']} items", field)
        if "items" in schema:
            for index, item in enumerate(value):
                check(item, schema["items"], f"{path}[{index}]" if path else f"[{index}]")
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise ValidationError(f"{label}: at most {schema['maxProperties']} keys", field)
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                sub = f"{path}.{name}" if path else name
                raise ValidationError(f"{sub}: is required", sub)
        if schema.get("additionalProperties") is False:
            unknown = [name for name in value if name not in props]
            if unknown and schema.get("x-names") == "filter":
                # Filters a caller picks from (an export's): a typo must not pass for
                # "no filter", so say which names are accepted.
                raise unknown_names(label, unknown, list(props),
                                    f"{path}.{unknown[0]}" if path else unknown[0])
            for name in unknown:
                sub = f"{path}.{name}" if path else name
                raise ValidationError(f"{sub}: unknown field", sub)
        for name, sub_schema in props.items():
            if name in value:
                check(value[name], sub_schema, f"{path}.{name}" if path else name)
    return value


def normalise_phone(raw: str) -> str:
    """Spaces and brackets go; dashes stay in landlines, go in +international."""
    phone = re.sub(r"[\s()（）]", "", raw or "")
    return phone.replace("-", "") if phone.startswith("+") else phone


def check_phone(raw: str) -> str:
    """``raw`` as a phone number is stored (``normalise_phone``), or ValidationError:
    one rule for every place a customer's phone comes in (the leave-a-message form,
    an agent's ticket, the widget's session), so none stores what another refuses."""
    phone = normalise_phone(raw)
    if not PHONE_RE.match(phone):
        raise ValidationError("phone: not a valid phone number (a mobile like "
                              "13800138000, a landline with its area code like "
                              "021-12345678, or +8613800138000)", "phone")
    return phone


#: One label of a host name as IDNA encodes it (letters, digits, hyphens inside;
#: underscores, which some internal names have).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _host_ok(host: str, bracketed: bool) -> bool:
    """A host name (also an IDN like 例子.中国) or an IPv4 address; an IPv6 address
    between brackets (``urlsplit`` has parsed it as one already)."""
    if bracketed:
        return True
    try:
        ascii_host = host.encode("idna").decode("ascii")
        ascii_host.encode("ascii").decode("idna")  # an xn-- label that is no punycode
    except UnicodeError:
        return False
    labels = ascii_host.lower().removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _spaceless(value: str, field: str) -> None:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(f"{field}: must not contain spaces or control characters", field)


def host_name(raw: str, field: str) -> str:
    """A host a client typed on its own (an SMTP or IMAP server): a host name or an
    IP address (an IPv6 one bare or between brackets), by the same check as a URL's
    host (``http_url``), or a 422 naming ``field``. Nothing is stripped: "127.0.0.1 "
    was stored and every delivery then failed "cannot resolve" (found from outside)."""
    import ipaddress

    _spaceless(raw, field)
    bare = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        ipaddress.ip_address(bare)
        return raw
    except ValueError:
        pass
    if bare is not raw or not raw or ":" in raw or not _host_ok(raw, False):
        raise ValidationError(f"{field}: the host name or IP address is not valid", field)
    return raw


def http_url(raw: str, field: str) -> str:
    """An absolute http(s) URL a client typed (an iframe panel, a webhook, a
    channel's API address), checked as a whole, or a 422 naming ``field`` that
    says what to fix. The one URL check: ``urlsplit`` raises ValueError for some
    URLs (an open ``[``, a port that is no number) and takes others it should not
    (port 99999, a host ``%zz``); both were stored, or answered 500, or showed
    urllib's English words. Returns the URL without surrounding spaces."""
    url = raw.strip()
    _spaceless(url, field)
    if not url.lower().startswith(("http://", "https://")):
        raise ValidationError(f"{field}: must start with http:// or https://", field)
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL", "'中文' does not appear to be an IPv4 or IPv6…"
        raise ValidationError(f"{field}: the host name or IP address is not valid",
                              field) from None
    if not parts.hostname:
        raise ValidationError(f"{field}: has no host name", field)
    if parts.username is not None or parts.password is not None:
        raise ValidationError(f"{field}: must not contain a user name or password", field)
    host_port = parts.netloc.rpartition("@")[2]
    bracketed = host_port.startswith("[")
    port = host_port.rpartition("]")[2] if bracketed else host_port
    port = port.partition(":")[2]
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValidationError(f"{field}: the port must be a number from 1 to 65535", field)
    if not _host_ok(parts.hostname, bracketed):
        raise ValidationError(f"{field}: the host name or IP address is not valid", field)
    return url


def parse_int(raw: str | None, name: str, default: Any, low: int, high: int) -> Any:
    """A whole number from query text within [low, high]; ``default`` when absent.

    One place for query integers, so every list and filter answers the same 422.
    """
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name}: expected a whole number", name) from None
    if not low <= value <= high:
        raise ValidationError(f"{name}: must be between {low} and {high}", name)
    return value


def unknown_names(label: str | None, unknown: list[str], accepted: list[str],
                  field: str) -> ValidationError:
    """The 422 for names nobody accepts, naming them and the accepted ones: filters
    of a body's ``label`` (``filters: unknown filter ended_form (accepted: …)``), or
    query parameters (``label`` None)."""
    names, ok = ", ".join(unknown), ", ".join(accepted)
    if label is None:
        if len(unknown) == 1:
            return ValidationError(f"unknown parameter {names} (accepted: {ok})", field)
        return ValidationError(f"unknown parameters {names} (accepted: {ok})", field)
    if len(unknown) == 1:
        return ValidationError(f"{label}: unknown filter {names} (accepted: {ok})", field)
    return ValidationError(f"{label}: unknown filters {names} (accepted: {ok})", field)


_BOOLEAN_WORDS = {"true", "false", "1", "0", "yes", "no"}
#: Query parameters any request may carry (the language of its errors), never
#: refused as unknown.
EVERY_REQUEST_QUERY = ("lang",)


def check_query(args: Any, schema: dict[str, Any]) -> None:
    """Check the query parameters a route declares (``route(query=…)``) against
    their schema, as the OpenAPI document shows them: whole numbers within
    their bounds and a database integer, booleans, enums, text lengths, and
    ``format: date`` days inside ``services.dates``' range. Empty values count
    as absent (views default them); undeclared parameters are the view's, unless
    the schema says ``additionalProperties: false`` (a list's filters: a misspelt
    one must not read as "no filter"): then a non-empty one is a 422 naming it
    and the accepted ones (``EVERY_REQUEST_QUERY`` aside).

    One place, so a route cannot forget a bound it documents (a number too big
    for a column, a day past the calendar) and every list answers the same 422.
    """
    from meiqia.services import dates

    declared = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        unknown = [name for name in dict.fromkeys(args.keys()) if args.get(name)
                   and name not in declared and name not in EVERY_REQUEST_QUERY]
        if unknown:
            raise unknown_names(None, unknown, list(declared), unknown[0])
    for name, sub in declared.items():
        raw = args.get(name)
        if raw in (None, ""):
            continue
        kind = sub.get("type")
        if kind == "integer":
            parse_int(raw, name, None, max(sub.get("minimum", INT_MIN), INT_MIN),
                      min(sub.get("maximum", INT_MAX), INT_MAX))
        elif kind == "boolean":
            if raw.lower() not in _BOOLEAN_WORDS:
                raise ValidationError(f"{name}: expected true or false", name)
        elif kind == "string":
            if sub.get("format") == "date":
                dates.parse_day(raw, name, f"{name}: expected a date like 2026-11-24")
            check(raw, {k: v for k, v in sub.items() if k != "format"}, name)


#: What an admin's browser gets back for a secret that is set; sent back, it keeps
#: the stored one (``merge_secrets``).
MASK = "********"
#: Names of a settings form's fields that decide where its secrets go: hosts,
#: ports, URLs, TLS modes, user names, account ids (docs/plugins.md, "Secrets").
SECRET_BOUND_NAMES = re.compile(
    r"host|port|url|uri|server|endpoint|security|tls|ssl|user|account|corp_?id|app_?id",
    re.IGNORECASE)
_BOUND_FORMATS = {"uri", "hostname", "idn-hostname", "ipv4", "ipv6"}


def secret_bound_to(schema: dict[str, Any]) -> list[str]:
    """The fields of a settings form (a channel's or a ticket sink's
    ``configuration_schema()``) that decide where its secrets are sent: each
    non-secret property whose ``format`` is uri/hostname/ipv4/ipv6 or whose name
    matches ``SECRET_BOUND_NAMES``, plus those the schema lists itself under
    ``"secret_bound_to"``. In the schema's order."""
    secrets = set(schema.get("secret") or [])
    properties = schema.get("properties") or {}
    declared = schema.get("secret_bound_to") or []
    declared = set(declared) if isinstance(declared, list) else set()
    return [name for name, sub in properties.items() if name not in secrets and (
        name in declared or SECRET_BOUND_NAMES.search(name)
        or (isinstance(sub, dict) and sub.get("format") in _BOUND_FORMATS))]


def merge_secrets(schema: dict[str, Any], config: dict[str, Any],
                  old: dict[str, Any] | None) -> dict[str, Any]:
    """The one place a masked secret (``MASK`` sent back) becomes the stored one,
    for channels and ticket sinks, saved or tested alike.

    A secret sent back masked keeps the stored value only while every field that
    decides where it goes (``secret_bound_to``) is as stored: a mask with a new
    host, port, URL, TLS mode or user name is refused, naming the secret, so the
    stored password is never sent to a server it was not saved for (an admin's
    token or a script in his browser pulled it out by pointing the "test
    connection" at its own server). A mask with nothing stored is refused too."""
    merged = dict(config)
    kept = [key for key in schema.get("secret") or [] if merged.get(key) == MASK]
    if not kept:
        return merged
    properties = schema.get("properties") or {}

    def value(cfg: dict[str, Any], name: str) -> Any:
        sub = properties.get(name)
        default = sub.get("default") if isinstance(sub, dict) else None
        found = cfg.get(name)
        return default if found is None else found

    changed = [name for name in secret_bound_to(schema)
               if value(merged, name) != value(old or {}, name)]
    for key in kept:
        if not (old and old.get(key)):
            raise ValidationError(f"config.{key}: enter the secret", f"config.{key}")
        if changed:
            raise ValidationError(
                f"config.{key}: config.{changed[0]} changed: enter the secret again "
                "(a saved secret is only sent to the server it was saved for)",
                f"config.{key}")
        merged[key] = old[key]
    return merged


def plugin_config(cls: type, config: dict[str, Any],
                  make: Callable[[], Any] | None = None) -> None:
    """Run a plugin class's own ``validate_config(config)``, if it has one (ticket
    sinks and channels alike): its ``ValueError`` becomes a ValidationError on
    ``config`` in the plugin's own words; our ValidationError passes as it is;
    anything else it raises is a ValidationError too, naming the exception (and
    logged with its traceback), never a server error.

    It may be a staticmethod or a classmethod, or a method of an instance
    (``def validate_config(self, config)``, like the class's other methods): then
    it is called on ``make()`` (a sink: ``cls()``, as its deliveries are)."""
    if getattr(cls, "validate_config", None) is None:
        return
    try:
        target = make() if make is not None and _takes_self(cls) else cls
        target.validate_config(config)
    except ValidationError:
        raise
    except ValueError as exc:  # a third-party plugin's own words
        raise ValidationError(f"config: {exc}", "config") from exc
    except Exception as exc:  # noqa: BLE001 - a plugin's bug: the admin hears it, not a 500
        logging.getLogger("meiqia.plugins").error(
            "%s.validate_config raised %s: %s", getattr(cls, "__qualname__", cls),
            type(exc).__name__, exc, exc_info=exc)
        raise ValidationError(
            f"config: the plugin's validate_config raised {type(exc).__name__}: {exc}",
            "config") from exc


def _takes_self(cls: type) -> bool:
    """Whether ``cls.validate_config`` is a method of instances: a plain function
    of two or more parameters (``self, config``). A staticmethod, a classmethod and
    a plain ``def validate_config(config)`` are called on the class."""
    raw = inspect.getattr_static(cls, "validate_config", None)
    if isinstance(raw, staticmethod | classmethod) or not inspect.isfunction(raw):
        return False
    try:
        return len(inspect.signature(raw).parameters) >= 2
    except (TypeError, ValueError):
        return True

"""Validate untrusted JSON against a small JSON-Schema subset.

One schema serves two purposes: ``check`` refuses bad input with a message that
names the field, and the OpenAPI document shows the same schema, so the docs
cannot drift from what the API accepts. Supported: type (object, string,
integer, number, boolean, array, null, or a list of them), properties,
required, additionalProperties (false only), enum, minLength, maxLength,
pattern, format (email), minimum, maximum, items, maxItems, minItems.
"""

from __future__ import annotations

import re
from typing import Any

from meiqia.services.errors import ValidationError

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "null": (type(None),),
}


#: The range of a database integer column (PostgreSQL ``integer``).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


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
            raise ValidationError(
                f"{label}: at most {schema['maxLength']} characters", field
            )
        if "pattern" in schema and not re.search(_ecma_end(schema["pattern"]), value):
            raise ValidationError(f"{label}: has the wrong format", field)
        if schema.get("format") == "email" and value and not EMAIL_RE.match(value):
            raise ValidationError(f"{label}: is not a valid email address", field)
    if isinstance(value, int) and not isinstance(value, bool) and not (
            INT_MIN <= value <= INT_MAX):
        # Ids and counts are database integers: a bigger number is a 422 here,
        # not an overflow inside the database driver (a 500).
        raise ValidationError(f"{label}: must be between {INT_MIN} and {INT_MAX}", field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ValidationError(f"{label}: must be at least {schema['minimum']}", field)
        if "maximum" in schema and value > schema["maximum"]:
            raise ValidationError(f"{label}: must be at most {schema['maximum']}", field)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValidationError(f"{label}: at most {schema['maxItems']} items", field)
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise ValidationError(f"{label}: at least {schema['minItems']} items", field)
        if "items" in schema:
            for index, item in enumerate(value):
                check(item, schema["items"], f"{path}[{index}]" if path else f"[{index}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                sub = f"{path}.{name}" if path else name
                raise ValidationError(f"{sub}: is required", sub)
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in props:
                    sub = f"{path}.{name}" if path else name
                    raise ValidationError(f"{sub}: unknown field", sub)
        for name, sub_schema in props.items():
            if name in value:
                check(value[name], sub_schema, f"{path}.{name}" if path else name)
    return value


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


_BOOLEAN_WORDS = {"true", "false", "1", "0", "yes", "no"}


def check_query(args: Any, schema: dict[str, Any]) -> None:
    """Check the query parameters a route declares (``route(query=…)``) against
    their schema, as the OpenAPI document shows them: whole numbers within
    their bounds and a database integer, booleans, enums, text lengths, and
    ``format: date`` days inside ``services.dates``' range. Empty values count
    as absent (views default them); undeclared parameters are the view's.

    One place, so a route cannot forget a bound it documents (a number too big
    for a column, a day past the calendar) and every list answers the same 422.
    """
    from meiqia.services import dates

    for name, sub in schema.get("properties", {}).items():
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


def plugin_config(cls: type, config: dict[str, Any]) -> None:
    """Run a plugin class's own ``validate_config(config)``, if it has one (ticket
    sinks and channels alike): its ``ValueError`` becomes a ValidationError on
    ``config`` in the plugin's own words; our ValidationError passes as it is."""
    validate = getattr(cls, "validate_config", None)
    if validate is None:
        return
    try:
        validate(config)
    except ValidationError:
        raise
    except ValueError as exc:  # a third-party plugin's own words
        raise ValidationError(f"config: {exc}", "config") from exc

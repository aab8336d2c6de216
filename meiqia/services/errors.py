"""Errors the domain raises; the web layer turns each into its HTTP status.

A service raises one of these *before* it writes anything, so a refused request
changes nothing (and transactions roll back anything it had begun).
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class ValidationError(ServiceError):
    status = 422
    code = "invalid"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class TokenExpired(Unauthorized):
    """A visitor token past its lifetime: the widget renews it (docs/protocol.md)."""

    code = "token_expired"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    """Also used for things that exist but are outside the actor's scope."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class TooLarge(ServiceError):
    status = 413
    code = "too_large"


class TooDeep(ServiceError):
    """JSON nested deeper than the server reads (``services.safe_json``)."""

    status = 400
    code = "too_deep"


class RateLimited(ServiceError):
    """429; ``retry_after`` (seconds), when known, becomes the Retry-After header."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, field)
        self.retry_after = retry_after

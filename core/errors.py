"""API errors and the middleware that renders them in the one error shape (docs/api.md)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("archnest.errors")


class ApiError(Exception):
    """An error with an HTTP status, a stable machine code and a human message."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        # The body field at fault ("port", "tls.ca"): forms show the message beside it.
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class TooManyRequests(ApiError):
    """Over a bound (streams, terminals, login attempts): refused at once, never queued.

    ``retry_after`` (seconds) becomes the ``Retry-After`` header when given.
    """

    status, code = 429, "too_many_requests"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class HostError(ApiError):
    """The host answered, but with an error (engine error, command failed)."""

    status, code = 502, "host_error"


class FeatureDisabled(ApiError):
    status, code = 503, "feature_disabled"


class HostTimeout(ApiError):
    """The host did not answer in time (or could not be reached at all)."""

    status, code = 504, "host_timeout"


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return True
    return "text/html" not in request.headers.get("Accept", "")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        resp = error_response(exc.status, exc.code, exc.message, exc.field)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return resp
    except web.HTTPException as exc:
        # Redirects and successful "exceptions" pass through untouched.
        if exc.status < 400 or not _wants_json(request):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, code, message)
    except Exception:
        # Never leak internals (paths, secrets in reprs) to the client.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")

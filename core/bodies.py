"""Request bodies: size-capped reads, JSON objects, and validation by the same pydantic
model that documents them.

A handler declares its body once, ``@operation(request=Model)``, and reads it with
``await read_model(request, Model, max_bytes)``: the schema in ``GET /api/openapi.json``
is then the one that is enforced, with no hand-written type checks beside it.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import BadRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)
# The names (never the values) of the fields a validated body sent: the audit log's
# "which fields changed" (core/audit.py).
BODY_FIELDS_KEY = web.RequestKey("archnest_body_fields", list)
# Enough to fix a body in one go; a body wrong everywhere does not get a page of text.
MAX_REPORTED_ERRORS = 5


async def read_body_limited(request: web.Request, max_bytes: int) -> bytes:
    """Read the body, refusing with 413 as soon as it exceeds ``max_bytes``.

    Checks Content-Length first, then counts while streaming so an unbounded or lying
    chunked body is never buffered whole.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def require_json(request: web.Request, max_bytes: int = 1024 * 1024) -> dict:
    """Parse a JSON object body with a size cap; 400/413 with a clear message otherwise."""
    body = await read_body_limited(request, max_bytes)
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object", code="malformed_json")
    # JSON may escape half a surrogate pair ("\ud800"): valid JSON, but not text; it
    # would fail later, as a 500, wherever it is encoded (database, crypto, TLS).
    if (b"\\ud" in body or b"\\uD" in body) and not _is_text(data):
        raise BadRequest("malformed JSON: a string holds a lone surrogate", code="malformed_json")
    return data


def _is_text(value: Any) -> bool:
    """Every string in ``value``, keys too, encodes as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_is_text(k) and _is_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_text(v) for v in value)
    return True


async def read_model(request: web.Request, model: type[M], max_bytes: int = 1024 * 1024) -> M:
    """The JSON object body validated by ``model``.

    413 over ``max_bytes``; 400 ``malformed_json`` when it is not a JSON object; 400
    ``invalid_body`` naming each offending field when it does not match the model.
    Validation is strict (JSON has types: ``"22"`` is not a port), so a model should
    forbid extra fields (``extra="forbid"``) to refuse unknown ones. Fields the client
    did not send stay unset: ``model_dump(exclude_unset=True)`` tells "absent" from
    ``null`` for a PATCH.
    """
    data = await require_json(request, max_bytes)
    try:
        parsed = model.model_validate(data, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)
        field = _location(first[0]["loc"]) if first and first[0]["loc"] else None
        raise BadRequest(summarise(exc), code="invalid_body", field=field) from None
    # Only the model's own field names: an ignored extra key is the client's text.
    request[BODY_FIELDS_KEY] = sorted(k for k in data if k in model.model_fields)
    return parsed


def summarise(exc: ValidationError) -> str:
    """``"port: Input should be a valid integer; tls.verify: ..."``: where and what, never
    the input itself (a body may carry a password or a private key)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{_location(e['loc'])}: {e['msg']}" for e in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"

"""Request bodies validated by the same pydantic model that documents them.

A handler declares its body once, ``@operation(request=Model)``, and reads it with
``await read_model(request, Model, max_bytes)``: the schema in ``GET /api/openapi.json``
is then the one that is enforced, with no hand-written type checks beside it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .auth import require_json
from .errors import BadRequest

M = TypeVar("M", bound=BaseModel)
# Enough to fix a body in one go; a body wrong everywhere does not get a page of text.
MAX_REPORTED_ERRORS = 5


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
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise BadRequest(summarise(exc), code="invalid_body") from None


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

"""Reading query parameters and JSON bodies the way the simulated APIs do."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from daemon.sandbox.errors import BadRequest


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body, which must be a JSON object.

    Raises:
        BadRequest: it is not.
    """
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter; values above ``high`` are lowered to it, as real APIs do.

    Raises:
        BadRequest: it is not an integer, or below ``low``.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if value < low:
        raise BadRequest(f"{name} must be at least {low}")
    return min(value, high)

"""API keys: sent as X-API-Key or as Authorization: Bearer (the scheme in any case), compared in constant time."""
from __future__ import annotations

import hmac

from flask import current_app, request
from werkzeug.datastructures import Headers

from ..errors import Unauthorized


def check_api_key() -> None:
    """Unauthorized unless API keys are off or one key the request carries is a configured one."""
    keys = current_app.extensions["guidepost"].settings.api_key_set
    if not keys:
        return
    if not any(hmac.compare_digest(given.encode(), key.encode()) for given in presented_keys(request.headers)
               for key in keys):
        raise Unauthorized("Missing or wrong API key: send it as X-API-Key or Authorization: Bearer.")


def presented_keys(headers: Headers) -> list[str]:
    """Every key a request carries: its X-API-Key and its Bearer token; either one may be the right one."""
    given = [headers.get("X-API-Key", "")]
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":  # RFC 9110: the scheme is case-insensitive
        given.append(token)
    return [key.strip() for key in given if key.strip()]

"""Keeping secrets out of URLs, messages and logs."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import httpx

MASK = "***"

#: Query parameters whose values are masked in every URL we show, whatever the auth.
SENSITIVE_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "api-key",
        "client_secret",
        "key",
        "password",
        "refresh_token",
        "secret",
        "sig",
        "signature",
        "token",
    }
)


def redact_url(url: httpx.URL | str, params: Iterable[str] = ()) -> str:
    """``url`` as text with sensitive query values and any userinfo password masked."""
    parsed = httpx.URL(url)
    names = SENSITIVE_PARAMS | {name.lower() for name in params}
    if parsed.password:
        parsed = parsed.copy_with(username=parsed.username, password=MASK)
    if parsed.query:
        items = [
            (name, MASK if name.lower() in names else value)
            for name, value in parsed.params.multi_items()
        ]
        parsed = parsed.copy_with(params=items)
    return str(parsed).replace("%2A%2A%2A", MASK)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each (non-empty) secret, as is or URL-encoded, replaced by ``***``."""
    forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote_plus(s))}
    for secret in sorted(forms, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text

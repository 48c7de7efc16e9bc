"""Auth flows: where each puts its secret, OAuth2 refresh in time and on 401, no secret leaks."""

from __future__ import annotations

import asyncio
import base64
import logging
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from daemon.http import (
    ApiKeyHeader,
    ApiKeyQuery,
    BasicAuth,
    BearerToken,
    HttpError,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Unauthorized,
)
from tests.daemon.http.conftest import FakeTime, mock_client

SECRET = "s3cr3t-VALUE-9f8e7d"
TOKEN_URL = "https://auth.example.test/oauth/token"


async def test_api_key_header(fake_time: FakeTime) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler, fake_time, auth=ApiKeyHeader(SecretStr(SECRET))) as client:
        await client.get_json("/x")
    assert seen[0].headers["X-API-Key"] == SECRET


async def test_api_key_query_is_sent_but_masked_in_errors(fake_time: FakeTime) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, json={"error": "bad", "echo": str(request.url)})

    auth = ApiKeyQuery(SecretStr(SECRET), param="key")
    async with mock_client(handler, fake_time, auth=auth) as client:
        with pytest.raises(HttpError) as caught:
            await client.get_json("/x", params={"a": "1"})
    assert seen[0].url.params["key"] == SECRET
    assert seen[0].url.params["a"] == "1"
    assert SECRET not in str(caught.value)
    assert "key=***" in caught.value.url


async def test_bearer_and_basic(fake_time: FakeTime) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler, fake_time, auth=BearerToken(SecretStr(SECRET))) as client:
        await client.get_json("/x")
    async with mock_client(handler, fake_time, auth=BasicAuth("agent", SecretStr(SECRET))) as c:
        await c.get_json("/x")
    assert seen[0].headers["Authorization"] == f"Bearer {SECRET}"
    expected = base64.b64encode(f"agent:{SECRET}".encode()).decode()
    assert seen[1].headers["Authorization"] == f"Basic {expected}"


class OAuthServer:
    """A token endpoint and an API that accepts only the newest access token."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.token_requests: list[dict[str, list[str]]] = []
        self.api_calls = 0
        self.revoked = False

    def current(self) -> str:
        return f"access-{SECRET}-{self.issued}"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            form = parse_qs(request.content.decode())
            self.token_requests.append(form)
            if form.get("client_secret") != [SECRET] and form.get("refresh_token", [""])[0] in (
                "",
                "dead",
            ):
                return httpx.Response(400, json={"error": "invalid_client", "got": str(form)})
            self.issued += 1
            body = {"access_token": self.current(), "expires_in": self.expires_in}
            if "refresh_token" in form:
                body["refresh_token"] = f"refresh-{self.issued}"
            return httpx.Response(200, json=body)
        self.api_calls += 1
        if self.revoked:
            self.revoked = False
            return httpx.Response(401, json={"error": "token revoked"})
        if request.headers.get("Authorization") != f"Bearer {self.current()}":
            return httpx.Response(401, json={"error": "bad token"})
        return httpx.Response(200, json={"ok": True})


def client_credentials(fake_time: FakeTime) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        TOKEN_URL, "client-1", SecretStr(SECRET), scope="read write", clock=fake_time.clock
    )


async def test_client_credentials_fetches_a_token_once_and_reuses_it(fake_time: FakeTime) -> None:
    server = OAuthServer()
    auth = client_credentials(fake_time)
    async with mock_client(server, fake_time, auth=auth) as client:
        for _ in range(3):
            assert await client.get_json("/x") == {"ok": True}
    assert server.issued == 1
    form = server.token_requests[0]
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == ["client-1"]
    assert form["scope"] == ["read write"]


async def test_token_refreshed_before_expiry_by_the_clock(fake_time: FakeTime) -> None:
    server = OAuthServer(expires_in=300)
    auth = client_credentials(fake_time)
    async with mock_client(server, fake_time, auth=auth) as client:
        await client.get_json("/x")
        fake_time.advance(250)  # 50 s left: more than the 30 s leeway
        await client.get_json("/x")
        assert server.issued == 1
        fake_time.advance(25)  # 25 s left: inside the leeway
        await client.get_json("/x")
        assert server.issued == 2
    assert server.api_calls == 3  # never a 401 on the way


async def test_token_refreshed_once_on_401_then_the_request_repeated(fake_time: FakeTime) -> None:
    server = OAuthServer()
    auth = client_credentials(fake_time)
    async with mock_client(server, fake_time, auth=auth) as client:
        await client.get_json("/x")
        server.revoked = True
        assert await client.get_json("/x") == {"ok": True}
    assert server.issued == 2
    assert server.api_calls == 3


async def test_second_401_is_unauthorized_not_a_loop(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": f"tok-{SECRET}", "expires_in": 60})
        return httpx.Response(401, json={"error": "no"})

    auth = client_credentials(fake_time)
    async with mock_client(handler, fake_time, auth=auth) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.get_json("/x")
    assert auth.refreshes == 2
    assert SECRET not in str(caught.value)


async def test_refresh_token_flow_rotates_the_refresh_token(fake_time: FakeTime) -> None:
    server = OAuthServer(expires_in=100)
    auth = OAuth2RefreshToken(
        TOKEN_URL, SecretStr("refresh-0"), client_id="app", clock=fake_time.clock
    )
    async with mock_client(server, fake_time, auth=auth) as client:
        await client.get_json("/x")
        fake_time.advance(90)
        await client.get_json("/x")
    assert [f["refresh_token"] for f in server.token_requests] == [["refresh-0"], ["refresh-1"]]
    assert auth.refresh_token.get_secret_value() == "refresh-2"


async def test_token_endpoint_refusal_is_unauthorized_without_secrets(
    fake_time: FakeTime,
) -> None:
    server = OAuthServer()
    auth = OAuth2RefreshToken(TOKEN_URL, SecretStr("dead"), clock=fake_time.clock)
    async with mock_client(server, fake_time, auth=auth) as client:
        with pytest.raises(Unauthorized, match="token endpoint refused") as caught:
            await client.get_json("/x")
    assert "dead" not in str(caught.value)


async def test_secrets_never_in_logs_reprs_or_errors(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = OAuthServer()
    auths = [
        ApiKeyHeader(SecretStr(SECRET)),
        ApiKeyQuery(SecretStr(SECRET), param="apikey"),
        BearerToken(SecretStr(SECRET)),
        BasicAuth("agent", SecretStr(SECRET)),
        client_credentials(fake_time),
        OAuth2RefreshToken(TOKEN_URL, SecretStr(SECRET), client_id="c", clock=fake_time.clock),
    ]
    texts: list[str] = []
    for auth in auths:

        def failing(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/oauth/token":
                return server(request)
            # A careless server echoes what it got: URL and headers (secrets first, so that
            # they are within the excerpt an error keeps).
            echo = f"{request.url} {dict(reversed(request.headers.items()))}"
            if request.url.path == "/html":  # 200 but a page, not JSON: a malformed answer
                return httpx.Response(200, text=f"<html>{echo}</html>")
            return httpx.Response(500 if "retry" in request.url.path else 403, text=echo)

        async with mock_client(failing, fake_time, auth=auth) as client:
            texts.append(repr(auth))
            texts.append(repr(client))
            for path in ("/retry", "/forbidden", "/html"):
                with pytest.raises(HttpError) as caught:
                    await client.get_json(path, params={"q": "1"})
                texts += [str(caught.value), repr(caught.value), caught.value.excerpt]
    logged = caplog.text + "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "HTTP Request" in logged  # httpx did log the requests, masked
    assert caplog.records
    for text in [*texts, logged]:
        assert SECRET not in text
        assert base64.b64encode(f"agent:{SECRET}".encode()).decode() not in text


async def test_concurrent_requests_share_one_token_fetch(fake_time: FakeTime) -> None:
    server = OAuthServer()
    auth = client_credentials(fake_time)
    async with mock_client(server, fake_time, auth=auth) as client:
        results = await asyncio.gather(*(client.get_json(f"/x/{n}") for n in range(8)))
    assert results == [{"ok": True}] * 8
    assert server.issued == 1


def test_scrub_masks_plain_and_url_encoded_secrets() -> None:
    from daemon.http.redact import redact_url, scrub

    secret = "a/b+c d"
    text = "raw a/b+c d, quoted a%2Fb%2Bc%20d, plus a%2Fb%2Bc+d"
    assert scrub(text, [secret]) == "raw ***, quoted ***, plus ***"
    shown = redact_url("https://u:pw@h.test/p?token=x&page=2&mykey=y", ["MyKey"])
    assert shown == "https://u:***@h.test/p?token=***&page=2&mykey=***"

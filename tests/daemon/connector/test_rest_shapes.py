"""The shapes real APIs need from the generic REST connector, each against a small API.

Every API here is an ``httpx.MockTransport`` with the behaviour of a real one that needed the
feature (NocoDB, Keycloak, a Redmine-like issue tracker): the connector is what is tested, the
API is its surroundings, and what is asserted is what the API received and holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from daemon.connector.config import EntityEndpointConfig
from daemon.connector.rest import BadRecord, RemoteRecord, RestEntity, render
from daemon.http import HttpClient, RetryPolicy

Handler = Callable[[httpx.Request], httpx.Response]


def entity(handler: Handler, **config: Any) -> RestEntity:
    client = HttpClient("http://api.test", transport=httpx.MockTransport(handler),
                        retry=RetryPolicy(attempts=1))
    return RestEntity(client, "api", "contact", EntityEndpointConfig.model_validate(config))


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


class Rows:
    """A NocoDB-like table: ``{"Id": n}`` answers, the id in the body of updates and deletes,
    ``UpdatedAt`` null until a row's first edit, whole-second times."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.now = "2026-12-07 10:00:00+00:00"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path == "/records":
            return httpx.Response(200, json={"list": list(self.rows.values()),
                                             "pageInfo": {"isLastPage": True}})
        if request.method == "GET" and path.startswith("/records/"):
            row = self.rows.get(int(path.rsplit("/", 1)[1]))
            return (httpx.Response(200, json=row) if row is not None
                    else httpx.Response(404, json={"error": "ERR_RECORD_NOT_FOUND"}))
        body = body_of(request)
        if request.method == "POST" and path == "/records":
            new_id = max(self.rows, default=0) + 1
            self.rows[new_id] = {"Id": new_id, "CreatedAt": self.now, "UpdatedAt": None, **body}
            return httpx.Response(200, json={"Id": new_id})
        if request.method == "PATCH" and path == "/records":
            row = self.rows[int(body.pop("Id"))]
            row.update(body, UpdatedAt=self.now)
            return httpx.Response(200, json={"Id": row["Id"]})
        if request.method == "DELETE" and path == "/records":
            del self.rows[int(body["Id"])]
            return httpx.Response(200, json={"Id": body["Id"]})
        return httpx.Response(405)


NOCO = {"path": "/records", "id": "Id", "updated": ["UpdatedAt", "CreatedAt"],
        "records_at": "list",
        "create": {"method": "POST", "answer": "id"},
        "update": {"method": "PATCH", "path": "/records", "id_field": "Id", "id_type": "integer",
                   "answer": "id"},
        "delete": {"method": "DELETE", "path": "/records", "id_field": "Id",
                   "id_type": "integer"}}


async def test_a_row_whose_updated_at_is_null_is_observed_by_its_created_at() -> None:
    api = Rows()
    rest = entity(api, **NOCO)

    created = await rest.create({"Email": "ada@x.org"})

    assert created is not None and created.id == "1"
    assert created.data["Email"] == "ada@x.org"  # read after the create: answer: id
    assert created.updated == 1796637600.0  # CreatedAt, since UpdatedAt is null
    api.now = "2026-12-07 10:00:05+00:00"
    after = await rest.update("1", {"Email": "ada@y.org"}, None)
    assert after is not None and after.updated == 1796637605.0  # UpdatedAt, now set
    assert api.rows[1]["Email"] == "ada@y.org"
    patch = next(r for r in api.requests if r.method == "PATCH")
    assert patch.url.path == "/records" and body_of(patch) == {"Id": 1, "Email": "ada@y.org"}


async def test_a_record_with_no_time_at_all_is_observed_without_one() -> None:
    rest = entity(lambda r: httpx.Response(200, json=[{"id": "u1", "email": "a@x.org"}]),
                  path="/users", updated=[])

    pages = [page async for page in rest.changes(None)]

    assert pages[0].records == [RemoteRecord("u1", {"id": "u1", "email": "a@x.org"}, None)]


async def test_an_unreadable_time_is_still_a_bad_record_naming_the_field() -> None:
    rest = entity(lambda r: httpx.Response(200, json=[
        {"id": 1, "UpdatedAt": None, "CreatedAt": "yesterday"}]),
        path="/users", updated=["UpdatedAt", "CreatedAt"])

    [page] = [page async for page in rest.changes(None)]

    assert isinstance(page.records[0], BadRecord)
    assert page.records[0].reason == ("record 1: no readable updated-at at 'CreatedAt' "
                                      "(got 'yesterday')")


async def test_deletes_send_the_id_in_the_body_to_the_collection() -> None:
    api = Rows()
    rest = entity(api, **NOCO)
    await rest.create({"Email": "a@x.org"})

    await rest.delete("1", None)

    assert api.rows == {}
    delete = api.requests[-1]
    assert (delete.method, delete.url.path, body_of(delete)) == ("DELETE", "/records", {"Id": 1})


async def test_a_since_filter_can_name_both_times_and_asks_from_the_start_of_the_second() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"list": []})

    rest = entity(handler, **NOCO, timestamp_resolution=1, params={"sort": "Id"},
                  since={"param": "where", "template":
                         "(UpdatedAt,gte,exactDate,{since})~or(CreatedAt,gte,exactDate,{since})"})

    async for _ in rest.changes(1796637605.75):
        pass

    assert seen[0].params["where"] == ("(UpdatedAt,gte,exactDate,2026-12-07T10:00:05Z)"
                                       "~or(CreatedAt,gte,exactDate,2026-12-07T10:00:05Z)")
    assert seen[0].params["sort"] == "Id"


async def test_envelopes_of_reads_and_writes_are_separate() -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            sent.append(body_of(request))
            return httpx.Response(201, json={"data": {"id": 7, "name": "Ada",
                                                      "updated_at": 100}})
        return httpx.Response(404)

    rest = entity(handler, path="/people", envelope={"read": "data"})

    created = await rest.create({"name": "Ada"})

    assert sent == [{"name": "Ada"}]  # a bare body, though answers are wrapped
    assert created is not None and (created.id, created.data["name"]) == ("7", "Ada")


async def test_a_write_envelope_wraps_writes_only() -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(body_of(request))
        return httpx.Response(200, json={"id": 7, "name": "Ada", "updated_at": 100})

    rest = entity(handler, path="/people", envelope={"write": "person"})

    updated = await rest.update("7", {"name": "Ada"}, None)

    assert sent == [{"person": {"name": "Ada"}}]
    assert updated is not None and updated.data["name"] == "Ada"


async def test_fixed_params_go_with_every_request_and_a_path_query_is_honoured() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url)))
        if request.method == "GET" and request.url.path == "/users":
            return httpx.Response(200, json=[])
        if request.method == "POST":
            return httpx.Response(201, headers={"Location": "http://api.test/users/u9"})
        return httpx.Response(200, json={"id": "u9"})

    rest = entity(handler, path="/users?briefRepresentation=false", updated=[],
                  params={"realm": "r1"},
                  create={"method": "POST", "params": {"notify": "no"}},
                  update={"method": "PUT", "path": "/users/{id}?partial=yes"})

    async for _ in rest.changes(None):
        pass
    await rest.fetch("u9")
    created = await rest.create({"email": "a@x.org"})
    await rest.update("u9", {"email": "b@x.org"}, None)

    assert created is not None and created.id == "u9"
    assert seen == [
        ("GET", "http://api.test/users?realm=r1&briefRepresentation=false"),
        ("GET", "http://api.test/users/u9?realm=r1&briefRepresentation=false"),
        ("POST", "http://api.test/users?realm=r1&briefRepresentation=false&notify=no"),
        ("GET", "http://api.test/users/u9?realm=r1&briefRepresentation=false"),
        ("PUT", "http://api.test/users/u9?realm=r1&briefRepresentation=false&partial=yes"),
    ]


async def test_defaults_fill_what_the_fields_leave_empty_and_constants_are_always_sent() -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(body_of(request))
        return httpx.Response(201, json={"id": len(sent), **body_of(request),
                                         "updated_at": 1})

    rest = entity(handler, path="/users", create={
        "method": "POST",
        "defaults": {"username": "{email}", "profile.note": "from {{syncline}} for {name}",
                     "locale": "en"},
        "constants": {"enabled": True, "project.id": 4}})

    await rest.create({"email": "a@x.org", "name": "Ada", "enabled": False})
    await rest.create({"email": "b@x.org", "username": "bee", "locale": ""})

    assert sent == [
        {"email": "a@x.org", "name": "Ada", "enabled": True, "username": "a@x.org",
         "profile": {"note": "from {syncline} for Ada"}, "locale": "en", "project": {"id": 4}},
        {"email": "b@x.org", "username": "bee", "locale": "en", "enabled": True,
         "profile": {"note": "from {syncline} for "}, "project": {"id": 4}},
    ]


def test_render_takes_dotted_paths_and_literal_braces() -> None:
    assert render("{a.b}-{{x}}-{missing}", {"a": {"b": 3}}) == "3-{x}-"


async def test_an_answer_with_only_the_id_is_read_and_one_without_an_id_is_named() -> None:
    rest = entity(lambda r: httpx.Response(200, json={"ok": True}), path="/records",
                  create={"method": "POST", "answer": "id"})

    with pytest.raises(Exception, match="the answer to a create has no id at 'id'"):
        await rest.create({"name": "x"})


async def test_answer_none_ignores_the_body_and_reads_the_record() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if request.method == "GET":
            return httpx.Response(200, json={"id": 7, "name": "Ada", "updated_at": 5})
        return httpx.Response(200, json={"message": "saved"})  # not the record

    rest = entity(handler, path="/people",
                  create={"method": "POST", "answer": "none"},
                  update={"method": "PUT", "answer": "none"},
                  lookup={"path": "/people", "params": {"name": "{name}"}})

    assert await rest.create({"name": "Ada"}) is None  # the lane looks it up
    updated = await rest.update("7", {"name": "Ada"}, None)

    assert updated is not None and updated.data["name"] == "Ada"
    assert seen == ["POST", "PUT", "GET"]


async def test_the_created_field_gives_a_record_its_created_at_time() -> None:
    listing = [{"id": "u1", "created_at": "2026-12-07T10:00:00Z", "updated_at": 5},
               {"id": "u2", "updated_at": 6},
               {"id": "u3", "created_at": "yesterday", "updated_at": 7}]
    rest = entity(lambda r: httpx.Response(200, json=listing), path="/users",
                  created="created_at")

    [page] = [page async for page in rest.changes(None)]

    first, second, third = page.records
    assert isinstance(first, RemoteRecord) and first.created == 1796637600.0
    assert isinstance(second, RemoteRecord) and second.created is None  # none: unknown
    assert isinstance(third, BadRecord) and "created-at at 'created_at'" in third.reason

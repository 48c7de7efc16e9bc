"""The connector contract, written once and run against each simulated system.

Each system is reached through the generic REST connector configured by the example config
(examples/syncline.yaml), over real HTTP: what passes here is what a user gets by writing
that config.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest
import yaml

from daemon.connector.rest import BadRecord, RemoteRecord, RestEntity
from daemon.http import MalformedResponse, PreconditionFailed
from daemon.sandbox import RunningSystem, run_crm, run_helpdesk
from tests.daemon.connector.conftest import ENV, EXAMPLE, connector


class ConnectorContract(abc.ABC):
    """What every connector must do, whatever the API behind it."""

    system: ClassVar[str]
    resource: ClassVar[str]  # the admin API's resource name
    email_field: ClassVar[str]
    name_field: ClassVar[str]

    @abc.abstractmethod
    def serve(self) -> Any:
        """The simulated system as an async context manager."""

    @pytest.fixture
    async def running(self) -> AsyncIterator[RunningSystem]:
        async with self.serve() as running:
            yield running

    @pytest.fixture
    async def admin(self, running: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=running.url, timeout=5) as client:
            yield client

    @pytest.fixture
    async def entity(self, running: RunningSystem) -> AsyncIterator[RestEntity]:
        rest = connector(self.system, running.url)
        yield rest
        await rest.client.aclose()

    def body(self, email: str, name: str) -> dict[str, Any]:
        return {self.email_field: email, self.name_field: name}

    async def person(self, admin: httpx.AsyncClient, email: str, name: str) -> str:
        """A record a person made in the system's UI; its id."""
        answer = await admin.post(f"/_admin/edit/{self.resource}",
                                  json={"op": "create", "fields": self.body(email, name)})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["record"]["id"])

    async def advance(self, admin: httpx.AsyncClient, seconds: float) -> None:
        answer = await admin.post("/_admin/clock", json={"advance_seconds": seconds})
        assert answer.status_code == 200, answer.text

    async def all_changes(self, entity: RestEntity, since: float | None
                          ) -> list[RemoteRecord | BadRecord]:
        return [record async for page in entity.changes(since) for record in page.records]

    # -- the contract ------------------------------------------------------------------
    async def test_create_then_fetch(self, entity: RestEntity) -> None:
        created = await entity.create(self.body("ada@example.com", "Ada"))
        assert created is not None
        assert created.data[self.email_field] == "ada@example.com"
        assert created.updated is not None
        fetched = await entity.fetch(created.id)
        assert fetched is not None
        assert fetched.id == created.id
        assert fetched.data[self.name_field] == "Ada"

    async def test_fetch_of_a_missing_record_is_none(self, entity: RestEntity) -> None:
        assert await entity.fetch("999999") is None

    async def test_update_changes_only_the_fields_sent(self, entity: RestEntity,
                                                      admin: httpx.AsyncClient) -> None:
        external_id = await self.person(admin, "bo@example.com", "Bo")
        current = await entity.fetch(external_id)
        assert current is not None
        after = await entity.update(external_id, {self.name_field: "Bo Diddley"},
                                    current.precondition)
        assert after is not None
        assert after.data[self.name_field] == "Bo Diddley"
        assert after.data[self.email_field] == "bo@example.com"
        again = await entity.fetch(external_id)
        assert again is not None and again.data[self.name_field] == "Bo Diddley"

    async def test_changes_walk_every_page(self, running: RunningSystem,
                                           admin: httpx.AsyncClient) -> None:
        ids = {await self.person(admin, f"p{i}@example.com", f"P {i}") for i in range(23)}
        small = connector(self.system, running.url, entities=self._paged(5))
        try:
            pages = [page async for page in small.changes(None)]
        finally:
            await small.client.aclose()
        assert len(pages) >= 5
        seen = [r.id for page in pages for r in page.records if isinstance(r, RemoteRecord)]
        assert sorted(seen) == sorted(ids)

    def _paged(self, size: int) -> dict[str, Any]:
        entities = yaml.safe_load(EXAMPLE.read_text())["systems"][self.system]["entities"]
        contact = dict(entities["contact"])
        contact["pagination"] = {**contact["pagination"], "size": size}
        return {"contact": contact}

    async def test_changes_since_a_time_leave_older_records_out(
            self, entity: RestEntity, admin: httpx.AsyncClient) -> None:
        old = await self.person(admin, "old@example.com", "Old")
        await self.advance(admin, 5)
        new = await self.person(admin, "new@example.com", "New")
        fetched = await entity.fetch(new)
        assert fetched is not None and fetched.updated is not None
        ids = {r.id for r in await self.all_changes(entity, fetched.updated)
               if isinstance(r, RemoteRecord)}
        assert new in ids
        assert old not in ids

    async def test_changes_since_the_newest_time_include_it_again(
            self, entity: RestEntity, admin: httpx.AsyncClient) -> None:
        # Resuming from the newest time seen must re-read it: another record may share it.
        external_id = await self.person(admin, "same@example.com", "Same")
        fetched = await entity.fetch(external_id)
        assert fetched is not None
        again = await self.all_changes(entity, fetched.updated)
        assert external_id in {r.id for r in again if isinstance(r, RemoteRecord)}

    async def test_lookup_by_match_key(self, entity: RestEntity,
                                       admin: httpx.AsyncClient) -> None:
        external_id = await self.person(admin, "Cy@Example.com", "Cy")
        found = await entity.lookup({self.email_field: "cy@example.com"})
        assert [r.id for r in found] == [external_id]
        assert await entity.lookup({self.email_field: "nobody@example.com"}) == []

    async def test_delete_then_fetch_is_none(self, entity: RestEntity,
                                             admin: httpx.AsyncClient) -> None:
        external_id = await self.person(admin, "di@example.com", "Di")
        await entity.delete(external_id, None)
        assert await entity.fetch(external_id) is None
        await entity.delete(external_id, None)  # already gone: fine
        listed = {r.id for r in await self.all_changes(entity, None)
                  if isinstance(r, RemoteRecord)}
        assert external_id not in listed

    async def test_html_instead_of_json_is_a_clear_error(self, entity: RestEntity,
                                                         admin: httpx.AsyncClient) -> None:
        await self.person(admin, "ed@example.com", "Ed")
        answer = await admin.post("/_admin/faults",
                                  json={"malformed_rate": 1.0, "malformed_kind": "html"})
        assert answer.status_code == 200, answer.text
        with pytest.raises(MalformedResponse, match="expected JSON, got HTML"):
            await self.all_changes(entity, None)


class TestCrm(ConnectorContract):
    system = "crm"
    resource = "contacts"
    email_field = "email"
    name_field = "full_name"

    def serve(self) -> Any:
        return run_crm(token=ENV["CRM_TOKEN"])

    async def test_conditional_update_refuses_a_stale_version(
            self, entity: RestEntity, admin: httpx.AsyncClient) -> None:
        assert entity.conditional
        external_id = await self.person(admin, "fay@example.com", "Fay")
        read = await entity.fetch(external_id)
        assert read is not None and read.version == "1"
        edit = await admin.post(f"/_admin/edit/{self.resource}", json={
            "op": "update", "id": external_id, "fields": {"full_name": "Fay (edited)"}})
        assert edit.status_code == 200, edit.text
        with pytest.raises(PreconditionFailed):
            await entity.update(external_id, {"full_name": "Fay (ours)"}, read.precondition)
        now = await entity.fetch(external_id)
        assert now is not None and now.data["full_name"] == "Fay (edited)"

    async def test_the_delete_feed_reports_deletes(self, entity: RestEntity,
                                                   admin: httpx.AsyncClient) -> None:
        assert entity.delete_feed
        external_id = await self.person(admin, "gil@example.com", "Gil")
        await admin.post(f"/_admin/edit/{self.resource}",
                         json={"op": "delete", "id": external_id})
        deleted = [d for page in [p async for p in entity.deletions(None)] for d in page]
        assert [d.id for d in deleted] == [external_id]
        assert deleted[0].at is not None


class TestHelpdesk(ConnectorContract):
    system = "helpdesk"
    resource = "users"
    email_field = "email_address"
    name_field = "name"

    def serve(self) -> Any:
        return run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None)

    async def test_without_versions_writes_are_not_conditional(self, entity: RestEntity
                                                               ) -> None:
        assert not entity.conditional
        assert not entity.delete_feed
        created = await entity.create(self.body("hal@example.com", "Hal"))
        assert created is not None and created.version is None

"""What the lane relies on from a connector, run against the twin and the real connector.

The lane suite tests the lane against :class:`MemoryConnector`; this contract holds that twin
to what :class:`RestEntity` does over HTTP with the simulated CRM and helpdesk (configured by
the example configuration), so a lane test that passes against the twin means what it says.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest

from daemon.connector.config import EntityEndpointConfig
from daemon.connector.rest import RemoteRecord
from daemon.http import PreconditionFailed
from daemon.lane import Connector
from daemon.lane.memory import MemoryConnector
from daemon.sandbox import run_crm, run_helpdesk
from tests.daemon.connector.conftest import ENV, connector, example_system


class ConnectorContract(abc.ABC):
    """The operations a lane makes, and what it counts on them to do."""

    email_field: ClassVar[str]
    name_field: ClassVar[str]
    entity: Connector

    @abc.abstractmethod
    async def person(self, email: str, name: str) -> str:
        """A record a person made in the system; its id."""

    @abc.abstractmethod
    async def person_deletes(self, external_id: str) -> None:
        """A person deletes a record."""

    @abc.abstractmethod
    async def advance(self, seconds: float) -> None:
        """The system's clock moves on."""

    @abc.abstractmethod
    async def does_not_keep(self, name: str) -> None:
        """The API stops keeping this field on writes (it answers them as usual)."""

    def body(self, email: str, name: str) -> dict[str, Any]:
        return {self.email_field: email, self.name_field: name}

    async def listed(self, since: float | None) -> set[str]:
        return {r.id async for page in self.entity.changes(since) for r in page.records
                if isinstance(r, RemoteRecord)}

    async def test_a_created_record_reads_back_with_its_id_and_time(self) -> None:
        created = await self.entity.create(self.body("ada@example.com", "Ada"))
        assert created is not None and created.updated is not None
        assert created.data[self.name_field] == "Ada"
        fetched = await self.entity.fetch(created.id)
        assert fetched is not None
        assert (fetched.id, fetched.version) == (created.id, created.version)
        assert fetched.data[self.email_field] == "ada@example.com"

    async def test_a_record_that_does_not_exist_reads_as_none(self) -> None:
        assert await self.entity.fetch("999999") is None

    async def test_an_update_changes_the_fields_sent_and_answers_the_record(self) -> None:
        external_id = await self.person("bo@example.com", "Bo")
        current = await self.entity.fetch(external_id)
        assert current is not None
        after = await self.entity.update(external_id, {self.name_field: "Bo D"},
                                         current.precondition)
        assert after is not None
        assert after.data[self.name_field] == "Bo D"
        assert after.data[self.email_field] == "bo@example.com"
        if current.version is not None:
            assert after.version != current.version

    async def test_an_update_of_a_field_not_kept_answers_what_was_kept(self) -> None:
        # What the lane's verification reads: the answer (or the read after it) shows what
        # the system holds, not what was sent.
        record_id = await self.person("keep@x.org", "Ann")
        await self.does_not_keep(self.name_field)
        after = await self.entity.update(record_id, {self.name_field: "Bob"}, None)
        assert after is not None and after.data[self.name_field] == "Ann"
        again = await self.entity.fetch(record_id)
        assert again is not None and again.data[self.name_field] == "Ann"

    async def test_a_conditional_update_after_another_write_writes_nothing(self) -> None:
        external_id = await self.person("cy@example.com", "Cy")
        read = await self.entity.fetch(external_id)
        assert read is not None
        if self.entity.config.conditional != "etag":
            pytest.skip("writes are not conditional here")
        await self.entity.update(external_id, {self.name_field: "Cy (other)"},
                                 read.precondition)
        with pytest.raises(PreconditionFailed):
            await self.entity.update(external_id, {self.name_field: "Cy (ours)"},
                                     read.precondition)
        now = await self.entity.fetch(external_id)
        assert now is not None and now.data[self.name_field] == "Cy (other)"

    async def test_changes_since_a_time_include_it_and_leave_older_records_out(self) -> None:
        old = await self.person("old@example.com", "Old")
        await self.advance(5)
        new = await self.person("new@example.com", "New")
        fetched = await self.entity.fetch(new)
        assert fetched is not None
        since = await self.listed(fetched.updated)
        assert new in since and old not in since
        assert {old, new} <= await self.listed(None)

    async def test_a_lookup_finds_a_record_by_its_match_key(self) -> None:
        external_id = await self.person("di@example.com", "Di")
        found = await self.entity.lookup({self.email_field: "di@example.com"})
        assert [r.id for r in found] == [external_id]
        assert await self.entity.lookup({self.email_field: "nobody@example.com"}) == []

    async def test_a_deleted_record_reads_as_none_and_is_not_listed(self) -> None:
        external_id = await self.person("ed@example.com", "Ed")
        await self.entity.delete(external_id, None)
        assert await self.entity.fetch(external_id) is None
        await self.entity.delete(external_id, None)  # already gone: fine
        assert external_id not in await self.listed(None)

    async def test_a_create_sent_again_with_its_key_answers_the_first_one(self) -> None:
        assert self.entity.idempotent_creates
        first = await self.entity.create(self.body("flo@example.com", "Flo"), key="k-flo")
        again = await self.entity.create(self.body("flo@example.com", "Flo"), key="k-flo")
        assert first is not None and again is not None and again.id == first.id
        await self.person_deletes(first.id)
        late = await self.entity.create(self.body("flo@example.com", "Flo"), key="k-flo")
        assert late is not None and late.id == first.id  # whatever happened since
        assert await self.entity.fetch(first.id) is None

    async def test_the_delete_feed_reports_a_persons_delete(self) -> None:
        if not self.entity.delete_feed:
            pytest.skip("this system reports no deletes")
        external_id = await self.person("gil@example.com", "Gil")
        await self.person_deletes(external_id)
        deleted = [d async for page in self.entity.deletions(None) for d in page]
        assert [d.id for d in deleted] == [external_id]
        assert deleted[0].at is not None


class SandboxContract(ConnectorContract):
    """The real connector over HTTP, with a simulated system behind it."""

    system: ClassVar[str]
    resource: ClassVar[str]

    @abc.abstractmethod
    def serve(self) -> Any: ...

    @pytest.fixture(autouse=True)
    async def running(self) -> AsyncIterator[None]:
        async with self.serve() as running, httpx.AsyncClient(base_url=running.url,
                                                               timeout=5) as admin:
            self.admin = admin
            rest = connector(self.system, running.url)
            self.entity = rest
            yield
            await rest.client.aclose()

    async def person(self, email: str, name: str) -> str:
        answer = await self.admin.post(f"/_admin/edit/{self.resource}", json={
            "op": "create", "fields": self.body(email, name)})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["record"]["id"])

    async def person_deletes(self, external_id: str) -> None:
        answer = await self.admin.post(f"/_admin/edit/{self.resource}",
                                       json={"op": "delete", "id": external_id})
        assert answer.status_code == 200, answer.text

    async def advance(self, seconds: float) -> None:
        answer = await self.admin.post("/_admin/clock", json={"advance_seconds": seconds})
        assert answer.status_code == 200, answer.text

    async def does_not_keep(self, name: str) -> None:
        answer = await self.admin.post("/_admin/faults", json={"ignore_fields": [name]})
        assert answer.status_code == 200, answer.text


class TwinContract(ConnectorContract):
    """The in-memory twin, configured like the simulated system it stands for."""

    system: ClassVar[str]

    @pytest.fixture(autouse=True)
    def twin(self) -> None:
        config: EntityEndpointConfig = example_system(
            self.system, "http://unused").entities["contact"]
        self.memory = MemoryConnector(self.system, "contact", config)
        self.entity = self.memory

    async def person(self, email: str, name: str) -> str:
        return self.memory.put(**self.body(email, name))

    async def person_deletes(self, external_id: str) -> None:
        self.memory.remove(external_id)

    async def advance(self, seconds: float) -> None:
        self.memory.now += seconds

    async def does_not_keep(self, name: str) -> None:
        self.memory.drops[name] = None


class TestCrm(SandboxContract):
    system, resource = "crm", "contacts"
    email_field, name_field = "email", "full_name"

    def serve(self) -> Any:
        return run_crm(token=ENV["CRM_TOKEN"])


class TestHelpdesk(SandboxContract):
    system, resource = "helpdesk", "users"
    email_field, name_field = "email_address", "name"

    def serve(self) -> Any:
        return run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None)


class TestTwinAsCrm(TwinContract):
    system = "crm"
    email_field, name_field = "email", "full_name"


class TestTwinAsHelpdesk(TwinContract):
    system = "helpdesk"
    email_field, name_field = "email_address", "name"

"""References against the twins: translated both ways, and intents parked until they can be."""

from __future__ import annotations

from streams.events import Observed, WriteFailed, Written
from tests.daemon.lane.conftest import Rig, make_rig


async def test_a_reference_is_read_as_the_canonical_id_of_the_record_it_names(rig: Rig
                                                                              ) -> None:
    rig.links.link("company", "co-acme", "crm", "7")
    rig.system.put(email="ann@x.org", full_name="Ann", company_id="7")
    await rig.lane.poll()
    [seen] = rig.reported()
    assert isinstance(seen, Observed) and seen.fields["company"] == "co-acme"


async def test_a_reference_not_linked_yet_is_resolved_to_the_id_the_hub_will_give() -> None:
    asked: list[tuple[str, str, str]] = []

    async def resolve(entity: str, system: str, external_id: str) -> str | None:
        asked.append((entity, system, external_id))
        return "co-new" if external_id == "8" else None

    rig = make_rig(resolve=resolve)
    rig.system.put(email="bo@x.org", full_name="Bo", company_id="8")
    await rig.lane.poll()
    [seen] = rig.reported()
    assert isinstance(seen, Observed) and seen.fields["company"] == "co-new"
    assert asked == [("company", "crm", "8")]
    assert rig.letters() == []


async def test_a_write_sends_the_systems_id_of_the_referenced_record(rig: Rig) -> None:
    rig.links.link("company", "co-acme", "crm", "7")
    rig.intent("create", values={"email": "cy@x.org", "name": "Cy", "company": "co-acme"})
    assert await rig.lane.execute_intents() == 1
    [held] = rig.system.live()
    assert held["company_id"] == "7"
    written = rig.reported()[-1]
    assert isinstance(written, Written) and written.fields is not None
    assert written.fields["company"] == "co-acme"  # read back as the canonical id


async def test_a_write_waits_until_the_referenced_record_is_linked(rig: Rig) -> None:
    job = rig.intent("create", values={"email": "di@x.org", "name": "Di",
                                       "company": "co-later"})
    await rig.lane.round()
    assert rig.system.live() == [] and rig.reported() == []
    assert list(rig.journal.parked) == [job.intent_id]  # committed: survives a restart
    assert rig.lane.status()["waiting_for_links"] == 1
    await rig.lane.round()  # no link yet: it keeps waiting
    assert rig.reported() == []
    rig.links.link("company", "co-later", "crm", "12")
    await rig.lane.round()
    assert [r["company_id"] for r in rig.system.live()] == ["12"]
    assert rig.kinds() == ["Written"]
    assert rig.journal.parked == {} and rig.lane.status()["waiting_for_links"] == 0


async def test_a_parked_intent_survives_a_restart(rig: Rig) -> None:
    rig.intent("create", values={"email": "ed@x.org", "name": "Ed", "company": "co-later"})
    await rig.lane.round()
    lane = rig.restart()
    assert lane.status()["waiting_for_links"] == 1
    rig.links.link("company", "co-later", "crm", "12")
    await lane.round()
    assert rig.kinds() == ["Written"]
    assert rig.journal.parked == {}


async def test_a_parked_intent_that_waited_too_long_fails(rig: Rig) -> None:
    job = rig.intent("create", values={"email": "flo@x.org", "name": "Flo",
                                       "company": "co-never"})
    await rig.lane.round()
    rig.clock.now += 599
    await rig.lane.round()
    assert rig.reported() == []
    rig.clock.now += 1
    await rig.lane.round()
    [failed] = rig.reported()
    assert isinstance(failed, WriteFailed) and failed.intent_id == job.intent_id
    assert failed.reason.startswith("waited 600 s: company refers to company co-never")
    assert rig.journal.parked == {} and rig.system.live() == []

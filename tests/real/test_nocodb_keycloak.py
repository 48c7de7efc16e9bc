"""NocoDB contacts and Keycloak users kept in step by examples/real-nocodb-keycloak.yaml.

Each test makes its own records (emails unique to the run) and checks the outcome in both
systems through their own APIs.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.real.conftest import MEASURED
from tests.real.systems import WORKER_PORT, Keycloak, NocoDB, Worker, eventually

# The first test also starts both systems afresh (a minute or two on a loaded machine).
pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]

SYNC = 90.0
"""Seconds a change may take to cross (polls every 2 s; generous for a loaded machine)."""


def polled(worker: Worker, more: int) -> None:
    """Wait until each lane has completed ``more`` polls from now."""
    for system in ("nocodb", "keycloak"):
        wanted = worker.polls(system) + more

        def done(system: str = system, wanted: float = wanted) -> bool:
            return worker.polls(system) >= wanted

        eventually(done, SYNC, f"{more} more polls of {system}")


def email(worker: Worker, who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:6]}@{worker.prefix}.test"


def test_creates_cross_both_ways(worker: Worker, noco: NocoDB, keycloak: Keycloak) -> None:
    ada = email(worker, "ada")
    bob = email(worker, "bob")
    noco.create(FirstName="Ada", LastName="Lovelace", Email=ada)
    keycloak.create(username=bob, email=bob, firstName="Bob", lastName="Byron", enabled=True)

    user = eventually(lambda: keycloak.by_email(ada), SYNC, f"{ada} in Keycloak")
    row = eventually(lambda: noco.by_email(bob), SYNC, f"{bob} in NocoDB")

    assert (user["firstName"], user["lastName"], user["username"]) == ("Ada", "Lovelace", ada)
    assert user["enabled"] is True  # the create's constant: Keycloak makes users disabled
    assert (row["FirstName"], row["LastName"]) == ("Bob", "Byron")


def test_edits_cross_both_ways(worker: Worker, noco: NocoDB, keycloak: Keycloak) -> None:
    cy = email(worker, "cy")
    dee = email(worker, "dee")
    row_id = noco.create(FirstName="Cy", LastName="Old", Email=cy)
    user_id = keycloak.create(username=dee, email=dee, firstName="Dee", lastName="Old",
                              enabled=True)
    eventually(lambda: keycloak.by_email(cy), SYNC, f"{cy} in Keycloak")
    eventually(lambda: noco.by_email(dee), SYNC, f"{dee} in NocoDB")

    noco.update(row_id, LastName="Newrow")
    keycloak.update(user_id, lastName="Newuser")  # a PUT without attributes keeps the rest

    eventually(lambda: (keycloak.by_email(cy) or {}).get("lastName") == "Newrow", SYNC,
               f"the NocoDB edit of {cy} in Keycloak")
    eventually(lambda: (noco.by_email(dee) or {}).get("LastName") == "Newuser", SYNC,
               f"the Keycloak edit of {dee} in NocoDB")
    # Neither edit came back to undo the other, and no field was lost on the way.
    row = noco.by_email(cy)
    assert row is not None and row["LastName"] == "Newrow"
    user = keycloak.by_email(dee)
    assert user is not None and (user["firstName"], user["lastName"]) == ("Dee", "Newuser")


def test_nothing_echoes_over_quiet_poll_cycles(worker: Worker, noco: NocoDB,
                                               keycloak: Keycloak) -> None:
    eve = email(worker, "eve")
    fay = email(worker, "fay")
    noco.create(FirstName="Eve", LastName="Quiet", Email=eve)
    keycloak.create(username=fay, email=fay, firstName="Fay", lastName="Quiet", enabled=True)
    eventually(lambda: keycloak.by_email(eve), SYNC, f"{eve} in Keycloak")
    eventually(lambda: noco.by_email(fay), SYNC, f"{fay} in NocoDB")
    polled(worker, 2)  # the writes that carried them settle

    rows_before = {r["Id"]: (r["UpdatedAt"], r["CreatedAt"]) for r in noco.rows()}
    events_before = len(keycloak.user_events())
    polled(worker, 5)

    rows_after = {r["Id"]: (r["UpdatedAt"], r["CreatedAt"]) for r in noco.rows()}
    assert rows_after == rows_before  # no row written, none created
    assert len(keycloak.user_events()) == events_before  # no user created, updated, deleted


def test_a_first_name_edited_in_both_at_once_is_resolved_from_the_cli(
        worker: Worker, noco: NocoDB, keycloak: Keycloak) -> None:
    gil = email(worker, "gil")
    row_id = noco.create(FirstName="Gil", LastName="Both", Email=gil)
    user = eventually(lambda: keycloak.by_email(gil), SYNC, f"{gil} in Keycloak")
    tag = gil.split("@")[0]

    # Both edits land before either lane polls again: neither side saw the other's.
    noco.update(row_id, FirstName=f"N-{tag}")
    keycloak.update(user["id"], firstName=f"K-{tag}")

    def open_conflict() -> str | None:
        for line in worker.cli("conflicts", "list", "--open", "--field", "first_name"
                               ).splitlines():
            if f"N-{tag}" in line and f"K-{tag}" in line:
                return line.split()[0]
        return None

    conflict_id = eventually(open_conflict, SYNC, f"an open conflict on {gil}'s first name")
    worker.cli("conflicts", "resolve", conflict_id, "--take", "keycloak", "--note", "test")

    eventually(lambda: (noco.by_email(gil) or {}).get("FirstName") == f"K-{tag}", SYNC,
               f"the chosen first name of {gil} in NocoDB")
    held = keycloak.by_email(gil)
    assert held is not None and held["firstName"] == f"K-{tag}"
    assert f"{conflict_id}  resolved" in worker.cli("conflicts", "list", "--field",
                                                    "first_name")


@pytest.mark.parametrize("kill_after", [20, 120])
def test_kill_9_during_a_burst_of_creates_makes_no_duplicate(
        worker: Worker, noco: NocoDB, keycloak: Keycloak, kill_after: int) -> None:
    batch = f"burst-{uuid.uuid4().hex[:6]}"
    emails = [f"{batch}-{i:03d}@{worker.prefix}.test" for i in range(200)]
    noco.create_many([{"FirstName": f"B{i}", "LastName": batch, "Email": e}
                      for i, e in enumerate(emails)])

    def in_keycloak() -> list[str]:
        return [u["email"] for u in keycloak.users()
                if u.get("email", "").startswith(f"{batch}-")]

    eventually(lambda: len(in_keycloak()) >= kill_after, 2 * SYNC,
               f"{kill_after} of the burst in Keycloak")
    worker.kill()
    worker.start()

    eventually(lambda: len(in_keycloak()) >= 200, 4 * SYNC,
               lambda: f"all 200 in Keycloak (have {len(in_keycloak())})")
    polled(worker, 3)  # anything still on its way arrives
    assert sorted(in_keycloak()) == emails  # each once: no duplicate user
    rows = [r["Email"] for r in noco.rows() if (r["Email"] or "").startswith(f"{batch}-")]
    assert sorted(rows) == emails  # and nothing was copied back as a new row


def test_a_thousand_records_cross_within_the_configured_rate_limit(
        worker: Worker, noco: NocoDB, keycloak: Keycloak) -> None:
    batch = f"many-{uuid.uuid4().hex[:6]}"
    emails = [f"{batch}-{i:04d}@{worker.prefix}.test" for i in range(1000)]
    noco.create_many([{"FirstName": f"M{i}", "LastName": batch, "Email": e}
                      for i, e in enumerate(emails)])

    def in_keycloak() -> list[str]:
        return [u["email"] for u in keycloak.users()
                if u.get("email", "").startswith(f"{batch}-")]

    eventually(lambda: len(in_keycloak()) >= 1000, 10 * SYNC,
               lambda: f"all 1000 in Keycloak (have {len(in_keycloak())})")
    assert sorted(in_keycloak()) == emails

    # Keycloak's own record of the creates: in no window of T seconds more than the bucket
    # allows (burst + rate * T), counting creates only (each also costs a lookup and a read).
    limit = worker.rate_limit("keycloak")
    ids = {u["id"] for u in keycloak.users() if u.get("email", "").startswith(f"{batch}-")}
    events = [e for e in keycloak.user_events() if e["resourcePath"][6:] in ids]
    times = sorted(e["time"] / 1000 for e in events if e["operationType"] == "CREATE")
    # Writes made against writes needed: 1000 creates in Keycloak, none back to NocoDB.
    assert len(times) == 1000 and len(events) == 1000
    assert all(r["UpdatedAt"] is None for r in noco.rows()
               if (r["Email"] or "").startswith(f"{batch}-"))
    for window in (1.0, 5.0):
        start = 0
        for end, moment in enumerate(times):
            while times[start] < moment - window:
                start += 1
            assert end - start + 1 <= limit["burst"] + limit["per_second"] * window
    MEASURED["1000 creates NocoDB -> Keycloak, first to last create"] = (
        f"{times[-1] - times[0]:.1f} s ({1000 / (times[-1] - times[0]):.1f} creates/s; "
        f"limit {limit['per_second']} requests/s)")


def webhooks(worker: Worker, outcome: str) -> float:
    """``syncline_webhooks_total`` of NocoDB's deliveries with ``outcome``."""
    return sum(v for k, v in worker.metrics().items()
               if k.startswith("syncline_webhooks_total{") and 'system="nocodb"' in k
               and f'outcome="{outcome}"' in k)


def test_a_nocodb_webhook_with_a_secret_header_names_the_rows_to_read(
        worker: Worker, noco: NocoDB, keycloak: Keycloak) -> None:
    # NocoDB cannot sign: its hook sends the shared secret in a header, and one bulk insert
    # is one delivery whose data.rows holds every row.
    url = f"http://127.0.0.1:{WORKER_PORT}/webhooks/nocodb/contact"
    accepted, refused = webhooks(worker, "accepted"), webhooks(worker, "bad_secret")
    hook = noco.add_hook(url, {"X-Hook-Secret": worker.hook_secret})
    try:
        people = [email(worker, who) for who in ("jo", "kai", "lu")]
        started = time.monotonic()
        noco.create_many([{"FirstName": who.split("-")[0].title(), "LastName": "Hook",
                           "Email": who} for who in people])
        for who in people:
            eventually(lambda who=who: keycloak.by_email(who), SYNC, f"{who} in Keycloak")
        MEASURED["a bulk insert of 3 NocoDB rows in Keycloak, with its webhook"] = (
            f"{time.monotonic() - started:.1f} s")
        eventually(lambda: webhooks(worker, "accepted") > accepted, SYNC,
                   "NocoDB's delivery accepted")
        assert webhooks(worker, "bad_secret") == refused
    finally:
        noco.remove_hook(hook)

    # A hook with the wrong secret is answered 401 and counted (the row still crosses by poll).
    wrong = noco.add_hook(url, {"X-Hook-Secret": "not-" + worker.hook_secret})
    try:
        noco.create(FirstName="Mo", LastName="Hook", Email=email(worker, "mo"))
        eventually(lambda: webhooks(worker, "bad_secret") > refused, SYNC,
                   "the delivery with a wrong secret refused")
    finally:
        noco.remove_hook(wrong)


def test_a_delete_in_either_removes_the_contact_from_both(
        worker: Worker, noco: NocoDB, keycloak: Keycloak) -> None:
    hal = email(worker, "hal")
    ivy = email(worker, "ivy")
    noco.create(FirstName="Hal", LastName="Gone", Email=hal)
    ivy_id = keycloak.create(username=ivy, email=ivy, firstName="Ivy", lastName="Gone",
                             enabled=True)
    hal_user = eventually(lambda: keycloak.by_email(hal), SYNC, f"{hal} in Keycloak")
    ivy_row = eventually(lambda: noco.by_email(ivy), SYNC, f"{ivy} in NocoDB")

    keycloak.delete(hal_user["id"])
    noco.delete(ivy_row["Id"])

    # Neither API lists deletes: each lane's sweep (every 30 s) finds them.
    eventually(lambda: noco.by_email(hal) is None, 2 * SYNC, f"{hal} gone from NocoDB")
    eventually(lambda: keycloak.by_email(ivy) is None, 2 * SYNC, f"{ivy} gone from Keycloak")
    assert all(u["id"] != ivy_id for u in keycloak.users())

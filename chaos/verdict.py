"""The checks of a chaos run, from the people's log and the systems' final states. Pure.

- **Records that differ**: an email live in some systems and not others, or with different
  values of any field in two systems.
- **Duplicates**: one email held by two live records of one system (the systems run without
  unique keys, so a duplicate would show).
- **Lost edits**: every value a person set is either *final* (the record holds it), or
  *superseded* (a person later looked at the record, saw that value, and changed the field
  or deleted the record), or a side of a *recorded conflict* (the daemon's conflict report
  names it). A create's values count as edits.
- **Lost deletes**: a deleted person is gone everywhere, unless a delete-versus-update
  conflict was recorded for the record. **Lost creates**: a created person is live, unless
  someone deleted them or a delete-versus-update conflict was recorded.
- **Edits overwritten in an API's window**: a lost edit the systems' own journals show to be
  the window no client can close on an API without conditional writes, with the hub's own
  share of it as the hub reported it with the write (:func:`in_window` has the exact rule).
  Reported as its own figure with its evidence, not as a violation; every other lost edit
  is a violation.
- **Echo writes**: the daemon's API writes that changed nothing; writes beyond what the
  people's actions can need (each action in another system needs at most one write to a
  system); writes during the quiet time after convergence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chaos.workload import EDITED, Action
from daemon.connector.rest import FRESH_READ_SECONDS

HUB = "syncline"
"""The origin the hub's requests carry (``X-Origin``); a person's edits are ``person``."""
WINDOW_FIGURE = "edits overwritten in an API's window (no conditional writes)"

FIELDS = ("email", *EDITED)


@dataclass
class Writes:
    """One system's API writes by the daemon."""

    made: int
    unchanged: int
    quiet: int  # made during the quiet time after convergence
    needed: int = 0  # at most: the people's actions in the other systems


@dataclass(frozen=True)
class Access:
    """One read or write of one record, as the system journalled it (``/_admin/journal``).

    ``at``: the system's wall clock (s) when it took the record from its store for an answer
    (a read) or executed the write. ``kind``: ``get`` (the record by itself), ``list``,
    ``search``; ``create``, ``update``, ``delete``. ``by``: ``person`` or the request's origin.
    ``delay``: the latency (s) the system injected before handling the request. ``fields``: a
    write's fields, canonically named. What the client said of itself: a read's
    ``request_id``; a write's ``read_id`` (the read it was decided on) and ``read_age`` (its
    client's own span, s, from that read's answer in hand to the write sent).
    """

    at: float
    op: str  # read, write
    kind: str
    by: str
    delay: float = 0.0
    fields: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    read_id: str | None = None
    read_age: float | None = None


Journals = Mapping[str, Mapping[str, Sequence[Access]]]
"""Per system, per record id, its accesses in the order the system made them."""


@dataclass
class Verdict:
    """The figures and every violation, each one line naming what and where; ``windowed``:
    the edits overwritten in an API's window, each with its evidence (not violations)."""

    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    windowed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def judge(log: Iterable[Action], final: Mapping[str, list[dict[str, Any]]],
          conflicts: Iterable[Mapping[str, Any]], canonical_id: Callable[[str], str],
          writes: Mapping[str, Writes], journals: Journals | None = None,
          unconditional: Collection[str] = (),
          fresh_read_seconds: float = FRESH_READ_SECONDS) -> Verdict:
    """Check the run: ``final`` holds each system's live records in canonical fields.

    ``journals``: the systems' journals of reads and writes; ``unconditional``: the systems
    configured without conditional writes. With both, a lost edit :func:`in_window` is counted
    under :data:`WINDOW_FIGURE` with its evidence instead of being a violation."""
    actions = list(log)
    verdict = Verdict()
    bad = verdict.violations

    # Duplicates, and each system's view by email.
    views: dict[str, dict[str, dict[str, Any]]] = {}
    duplicates = 0
    for system, records in sorted(final.items()):
        counts = Counter(str(r.get("email")) for r in records)
        for email, n in sorted(counts.items()):
            if n > 1:
                duplicates += n - 1
                bad.append(f"duplicate: {email} is {n} records in {system}")
        views[system] = {str(r.get("email")): r for r in records}

    # Records that differ.
    emails = sorted(set().union(*(set(v) for v in views.values())))
    differ = 0
    for email in emails:
        holders = {s: v[email] for s, v in views.items() if email in v}
        if len(holders) != len(views):
            differ += 1
            bad.append(f"differs: {email} live in {sorted(holders)} only")
            continue
        shown = {s: {f: r.get(f) for f in FIELDS} for s, r in holders.items()}
        if len({tuple(sorted(v.items())) for v in shown.values()}) > 1:
            differ += 1
            bad.append(f"differs: {email}: {shown}")
    final_values = {email: {f: r.get(f) for f in FIELDS}
                    for view in views.values() for email, r in view.items()}

    # What the conflict reports name.
    in_conflict: set[tuple[str, str, str]] = set()
    delete_conflicts: set[str] = set()
    for event in conflicts:
        cid = str(event["canonical_id"])
        if event["field"] == "_deleted":
            delete_conflicts.add(cid)
        for side in ("current", "incoming"):
            in_conflict.add((cid, str(event["field"]), repr(event[side]["value"])))

    # What people saw before they acted.
    seen: set[tuple[str, str, str]] = set()
    deleted: set[str] = set()
    created: set[str] = set()
    for action in actions:
        if action.op == "edit":
            name = next(iter(action.values))
            seen.add((action.email, name, repr(action.saw.get(name))))
        elif action.op == "delete":
            deleted.add(action.email)
            for name, value in action.saw.items():
                seen.add((action.email, name, repr(value)))
        else:
            created.add(action.email)

    lost = final_count = superseded = conflicted = 0
    windowed = verdict.windowed
    for action in actions:
        if action.op == "delete":
            continue
        cid = canonical_id(action.email)
        for name, value in action.values.items():
            if name == "email":
                continue
            if final_values.get(action.email, {}).get(name) == value:
                final_count += 1
            elif (action.email, name, repr(value)) in seen:
                superseded += 1
            elif (cid, name, repr(value)) in in_conflict or (
                    action.email not in final_values and cid in delete_conflicts):
                conflicted += 1
            elif (action.system in unconditional and journals is not None
                  and (evidence := in_window(action, name, value,
                                             journals.get(action.system, {}),
                                             fresh_read_seconds)) is not None):
                windowed.append(evidence)
            else:
                lost += 1
                bad.append(f"lost edit: step {action.step} ({action.op} in {action.system}, "
                           f"t={action.at:.1f}s) set {action.email} {name}={value!r}; it is "
                           f"{final_values.get(action.email, {}).get(name, 'gone')!r} now, "
                           "no later edit saw it, no conflict names it")

    lost_deletes = 0
    for email in sorted(deleted):
        if email in final_values and canonical_id(email) not in delete_conflicts:
            lost_deletes += 1
            bad.append(f"lost delete: {email} was deleted and is live again, no conflict")
    lost_creates = 0
    for email in sorted(created - deleted):
        if email not in final_values and canonical_id(email) not in delete_conflicts:
            lost_creates += 1
            bad.append(f"lost create: {email} was created and is nowhere now")
    unknown = sorted(set(final_values) - created)
    for email in unknown:
        bad.append(f"unknown record: {email} in the systems, nobody created it")

    echo = 0
    for system, w in sorted(writes.items()):
        extra = max(0, w.made - w.needed)
        echo += w.unchanged + extra + w.quiet
        if w.unchanged:
            bad.append(f"echo: {w.unchanged} writes to {system} changed nothing")
        if extra:
            bad.append(f"echo: {w.made} writes to {system}, at most {w.needed} needed")
        if w.quiet:
            bad.append(f"echo: {w.quiet} writes to {system} after convergence")

    ops = Counter(a.op for a in actions)
    verdict.figures.update({
        "creates": ops["create"], "edits": ops["edit"], "deletes": ops["delete"],
        "concurrent actions": sum(1 for a in actions if a.concurrent),
        "records at the end": len(final_values),
        "records that differ": differ, "duplicates": duplicates,
        "values final": final_count, "values superseded": superseded,
        "values on the losing side of a recorded conflict": conflicted,
        "lost edits": lost, WINDOW_FIGURE: len(windowed),
        "lost deletes": lost_deletes, "lost creates": lost_creates,
        "unknown records": len(unknown), "echo writes": echo,
        "conflicts recorded": len({(c, f) for c, f, _ in in_conflict}),
    })
    return verdict


def needed_writes(actions: Iterable[Action], systems: Iterable[str]) -> dict[str, int]:
    """Per system, the most writes the people's actions can need there: one per action taken
    in another system (a create, an edit, a delete each reach every other system once)."""
    names = list(systems)
    per_system = Counter(a.system for a in actions)
    total = sum(per_system.values())
    return {name: total - per_system[name] for name in names}


def in_window(action: Action, name: str, value: Any, journal: Mapping[str, Sequence[Access]],
              fresh_read_seconds: float = FRESH_READ_SECONDS) -> str | None:
    """The evidence that a person's value was overwritten in the API's own window, or None.

    The caller has established that ``value`` (field ``name``, set by ``action``) is lost and
    that the system has no conditional writes. From the system's ``journal`` alone, all of:

    1. a person's write of the record set ``name`` to ``value``, executed at t2;
    2. the next write of the record that set ``name`` (nothing deleted it before) is the
       hub's update, executed at t3 > t2, to another value: the one that replaced it;
    3. the last read of the record before that write — any read, by anyone, of any kind —
       is the hub's read of that record by itself (``get``), answered at t1 < t2;
    4. that write names that read as the one it was decided on (its ``read_id`` is the
       read's ``request_id``);
    5. the hub's own span from that read's answer in its hands to the write sent, as it
       reported it with the write (``read_age``), is at most ``fresh_read_seconds`` (the
       lane's guard) and fits in the system's t3 - t1 less the delay it injected.

    The rest of t3 - t1 is transit: the network and the two processes' event loops both
    ways, and the system's injected delay; it is printed, not bounded. Anything else (an
    older read, another read between, a write that names no read or another one, a span
    the hub did not report or past its guard, a listing, a write by someone else) is not
    this window: None, and the loss stays a violation.
    """
    for key, accesses in journal.items():
        mine = next((i for i, a in enumerate(accesses) if a.op == "write" and a.by == "person"
                     and name in a.fields and a.fields[name] == value), None)
        if mine is None:
            continue
        t2 = accesses[mine].at
        replaced = next((j for j in range(mine + 1, len(accesses))
                         if accesses[j].op == "write"
                         and (name in accesses[j].fields or accesses[j].kind == "delete")),
                        None)
        if replaced is None:
            return None
        write = accesses[replaced]
        if (write.by != HUB or write.kind != "update" or write.fields[name] == value
                or not write.at > t2):
            return None
        read = next((accesses[i] for i in range(replaced - 1, -1, -1)
                     if accesses[i].op == "read"), None)
        if read is None or read.by != HUB or read.kind != "get" or not read.at < t2:
            return None
        if read.request_id is None or write.read_id != read.request_id:
            return None
        span = write.read_age
        window = write.at - read.at
        if span is None or span > fresh_read_seconds or span > window - write.delay:
            return None
        transit = window - write.delay - span
        return (f"step {action.step} ({action.op} in {action.system}, t={action.at:.1f}s) set "
                f"{action.email} {name}={value!r}, record {key}: the hub's read answered at "
                f"{_clock(read.at)}, the person's write executed {_ms(t2 - read.at)} after "
                f"it, the hub's write of {write.fields[name]!r} (decided on that read) "
                f"{_ms(window)} after it: the hub's own span {_ms(span)} (at most "
                f"{_ms(fresh_read_seconds)}), {_ms(write.delay)} injected delay, "
                f"{_ms(transit)} transit")
    return None


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"

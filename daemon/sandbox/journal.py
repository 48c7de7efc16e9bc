"""When a simulated system read and wrote each record, and for whom: evidence for an oracle.

Off unless the system is built with ``journal=True`` (the chaos run turns it on; a long-lived
sandbox would otherwise grow without end). Each entry is one access to one record:

- a **read**: an API answer that showed the record (``get``: the record by itself; ``list``:
  a listing page; ``search``: a lookup), at the moment the handler took the record from the
  store — the state the answer carries;
- a **write**: a create, update or delete the store executed, at that moment, with the fields
  it set as kept (after the ``ignore_fields`` and like faults) and whether it changed the
  record.

``by`` is ``person`` for an edit without an API request (``/_admin/edit``, or a person acting
in-process through the write path, as the chaos run's people do), else the request's
``X-Origin`` header, else its ``User-Agent``, else ``unknown``. ``delay_ms`` is the latency the
fault injector made the request wait before it was handled (0 without a ``latency_ms`` fault).
``at`` is the wall clock (seconds since the epoch, ``time.time``), not the simulated clock:
the windows it measures are real time.

What the client says of itself is kept as it says it: a read's ``request_id`` (its
``X-Request-Id``); a write's ``read_id`` and ``read_age`` (``X-Syncline-Read-Id``,
``X-Syncline-Read-Age``: the read the client decided the write on, and the seconds from that
read's answer in its hands to the write sent, by its own clock — syncline sends both with a
write that carries no precondition).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from daemon.http.headers import READ_AGE, READ_ID, REQUEST_ID

DELAY = web.RequestKey("sandbox_delay_ms", int)
"""The injected latency a request waited, set by the fault middleware."""

PERSON = "person"


@dataclass(frozen=True)
class Entry:
    """One read or write of one record."""

    at: float
    op: str  # read, write
    kind: str  # read: get, list, search; write: create, update, delete
    by: str
    delay_ms: int = 0
    fields: Mapping[str, Any] | None = None  # a write's fields as kept
    changed: bool = False  # a write that changed the record
    request_id: str | None = None  # a read's X-Request-Id
    read_id: str | None = None  # a write's X-Syncline-Read-Id: the read it was decided on
    read_age: float | None = None  # a write's X-Syncline-Read-Age (s): its client's span

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = dict(self.fields) if self.fields is not None else None
        return data


def origin(request: web.Request | None) -> str:
    """Who made an access: ``person`` without a request, else the request's origin."""
    if request is None:
        return PERSON
    return request.headers.get("X-Origin") or request.headers.get("User-Agent") or "unknown"


class Journal:
    """Every access to every record, by resource and key, in the order they happened."""

    def __init__(self, enabled: bool = False, wall: Callable[[], float] = time.time) -> None:
        self.enabled = enabled
        self._wall = wall
        self._entries: defaultdict[tuple[str, int], list[Entry]] = defaultdict(list)

    def read(self, resource: str, keys: list[int], kind: str, request: web.Request) -> None:
        """An API answer showing the records ``keys`` of ``resource``."""
        if not self.enabled:
            return
        at = self._wall()
        entry = Entry(at, "read", kind, origin(request), request.get(DELAY, 0),
                      request_id=request.headers.get(REQUEST_ID))
        for key in keys:
            self._entries[resource, key].append(entry)

    def write(self, resource: str, key: int, kind: str, fields: Mapping[str, Any],
              changed: bool, request: web.Request | None) -> None:
        """A write the store executed on record ``key`` of ``resource``."""
        if not self.enabled:
            return
        delay = request.get(DELAY, 0) if request is not None else 0
        read_id = request.headers.get(READ_ID) if request is not None else None
        age = _seconds(request.headers.get(READ_AGE)) if request is not None else None
        self._entries[resource, key].append(
            Entry(self._wall(), "write", kind, origin(request), delay, dict(fields), changed,
                  read_id=read_id, read_age=age))

    def records(self, resource: str) -> dict[str, list[dict[str, Any]]]:
        """Every record of ``resource`` with an entry: its key (as text) to its entries."""
        return {str(key): [e.as_json() for e in entries]
                for (name, key), entries in sorted(self._entries.items()) if name == resource}

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()


def _seconds(value: str | None) -> float | None:
    """A header's number of seconds; None when absent or not a finite number >= 0."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None

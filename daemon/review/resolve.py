"""Turning a person's choice into a :class:`~streams.events.Resolution`, checked first.

The fold rejects a resolution it cannot apply (an unknown conflict, a system that is not a
candidate, a value of the wrong type) by sending it to the dead-letter topic, and ignores one
for a conflict that is no longer open. A person deserves to hear that at once, so the CLI and
the review page check the same things here before they publish. Time, the resolution id and
who decided are arguments: this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from conflict.state import DELETE_FIELD, Json
from daemon.review.errors import NotResolvable
from streams import (
    ConflictEvent,
    EntityModel,
    Resolution,
)

NO_VALUE: Final = object()
"""Marks that no ``value`` was given (``None`` is a value: it clears the field)."""

Accepts = Callable[[str, str, Json], bool]
"""``accepts(entity, field, value)``: whether the entity has the field and it takes the value."""


def field_types(catalog: Mapping[str, EntityModel]) -> Accepts:
    """The :data:`Accepts` of the fold's entity specs (``Config.catalog()``)."""
    def accepts(entity: str, name: str, value: Json) -> bool:
        model = catalog.get(entity)
        spec = None if model is None else model.spec.fields.get(name)
        return spec is not None and spec.accepts(value)
    return accepts


def plan_resolution(event: ConflictEvent, *, take: str | None = None,
                    value: Json | object = NO_VALUE, by: str, via: str, at: float,
                    resolution_id: str, note: str | None = None,
                    accepts: Accepts | None = None) -> Resolution:
    """The resolution that takes ``take``'s candidate, or sets ``value``.

    Args:
        event: the conflict as it stands now.
        take: the system whose candidate wins.
        value: a value of the person's own (JSON); for a delete conflict, a mapping of field
            values to keep the record with.
        by: who decided (a name).
        via: where: ``"cli"``, ``"review-page"``.
        at: when (Unix seconds).
        resolution_id: a new, unique id.
        note: why, in the person's words.
        accepts: checks a value against the field's type (from the config), when known.

    Raises:
        NotResolvable: the conflict is not open, both or neither of ``take`` and ``value``
            were given, ``take`` wrote neither candidate, or ``value`` does not fit.
    """
    cid = event.conflict_id
    if event.status != "open":
        how = f"it was {event.status.replace('_', '-')}"
        if event.resolution is not None:
            how += f" by {event.resolution.by}"
        raise NotResolvable(f"conflict {cid} is not open ({how}); only open conflicts can be "
                            "resolved")
    given_value = value is not NO_VALUE
    if (take is None) == (not given_value):
        raise NotResolvable(f"conflict {cid}: say what wins: take one system's value, or give "
                            "a value (not both)")
    if take is not None:
        systems = [event.current.system, event.incoming.system]
        if take not in systems:
            raise NotResolvable(f"conflict {cid}: {take!r} is not one of its candidates "
                                f"({', '.join(systems)})")
        return Resolution(resolution_id=resolution_id, canonical_id=event.canonical_id,
                          entity=event.entity, conflict_id=cid, by=by, at=at, via=via,
                          take=take, note=note)
    chosen: Json = value
    if event.field == DELETE_FIELD:
        if not isinstance(chosen, Mapping):
            raise NotResolvable(f"conflict {cid} is a delete against an update: to keep the "
                                "record give a JSON object of field values, or take a side")
        checks = dict(chosen.items())
    else:
        checks = {event.field: chosen}
    if accepts is not None:
        for name, item in checks.items():
            if not accepts(event.entity, name, item):
                raise NotResolvable(f"conflict {cid}: {item!r:.80} does not fit field "
                                    f"{event.entity}.{name}")
    return Resolution(resolution_id=resolution_id, canonical_id=event.canonical_id,
                      entity=event.entity, conflict_id=cid, by=by, at=at, via=via,
                      value=chosen, note=note)

"""What the fold needs to know about an entity: its systems, fields and policies.

An :class:`EntitySpec` is built once at start-up (from the YAML config, by ``daemon``) and passed
to every call of the fold. It is plain data; building it checks that it can work, so a wrong
policy fails at start-up, not on the first conflict.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conflict.errors import SpecError

REVIEW = "review"
"""The actor of a person's resolution."""

MERGE = "merge"
"""The actor of a value a policy made from both sides of a conflict (union, max, min, custom):
a write nobody has seen yet, so every system, the two whose edits were merged included, is
behind it until it is written there."""


class FieldType(enum.Enum):
    """The JSON type a field's values must have (``null`` is always allowed)."""

    ANY = "any"
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    LIST = "list"
    OBJECT = "object"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_TYPE_CHECKS: dict[FieldType, Callable[[Any], bool]] = {
    FieldType.ANY: lambda v: True,
    FieldType.STRING: lambda v: isinstance(v, str),
    FieldType.NUMBER: _is_number,
    FieldType.INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
    FieldType.BOOLEAN: lambda v: isinstance(v, bool),
    FieldType.LIST: lambda v: isinstance(v, list),
    FieldType.OBJECT: lambda v: isinstance(v, dict),
}


# -- policies -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Latest:
    """The newer source timestamp wins; ties go by system order, then by value."""

    name: str = field(default="latest", init=False)


@dataclass(frozen=True, slots=True)
class Prefer:
    """The candidate from the system earliest in ``systems`` wins."""

    systems: tuple[str, ...]
    name: str = field(default="prefer", init=False)


@dataclass(frozen=True, slots=True)
class Owner:
    """Only ``system`` may change the field; edits from anywhere else are reverted."""

    system: str
    name: str = field(default="owner", init=False)


@dataclass(frozen=True, slots=True)
class Union:
    """Both lists merged: every element of either side, sorted, without repeats."""

    name: str = field(default="union", init=False)


@dataclass(frozen=True, slots=True)
class Max:
    """The larger value."""

    name: str = field(default="max", init=False)


@dataclass(frozen=True, slots=True)
class Min:
    """The smaller value."""

    name: str = field(default="min", init=False)


@dataclass(frozen=True, slots=True)
class Manual:
    """The canonical value stays; the conflict stays open until a person resolves it."""

    name: str = field(default="manual", init=False)


@dataclass(frozen=True, slots=True)
class Custom:
    """A callable named by dotted path: ``fn(field, current, incoming) -> value``.

    ``current`` and ``incoming`` are :class:`conflict.policy.Candidate` values. The callable
    must be deterministic: the same candidates always give the same value.
    """

    path: str
    fn: Callable[..., Any] = field(compare=False, repr=False)
    name: str = field(default="custom", init=False)


Policy = Latest | Prefer | Owner | Union | Max | Min | Manual | Custom


class DeletePolicy(enum.Enum):
    """What a delete concurrent with an update becomes."""

    DELETE_WINS = "delete_wins"
    UPDATE_WINS = "update_wins"
    MANUAL = "manual"  # the record stays alive; the conflict is open for review


def load_callable(path: str) -> Callable[..., Any]:
    """Import ``package.module.function`` (or ``package.module:function``)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise SpecError(f"custom policy {path!r}: expected 'package.module.function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"custom policy {path!r}: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SpecError(f"custom policy {path!r}: {module_name!r} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def parse_policy(raw: Any) -> Policy:
    """Read a policy in its config form.

    ``"latest"``, ``"union"``, ``"max"``, ``"min"``, ``"manual"``, ``{"prefer": [a, b]}``,
    ``{"owner": a}`` or ``{"custom": "package.module.function"}``.
    """
    simple: dict[str, Policy] = {
        "latest": Latest(),
        "union": Union(),
        "max": Max(),
        "min": Min(),
        "manual": Manual(),
    }
    if isinstance(raw, str):
        if raw in simple:
            return simple[raw]
        raise SpecError(f"unknown policy {raw!r}: expected one of {', '.join(simple)}, "
                        "or {prefer: [...]}, {owner: ...}, {custom: ...}")
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((kind, arg),) = raw.items()
        if kind == "prefer" and isinstance(arg, list | tuple) and arg:
            return Prefer(tuple(str(s) for s in arg))
        if kind == "owner" and isinstance(arg, str):
            return Owner(arg)
        if kind == "custom" and isinstance(arg, str):
            return Custom(arg, load_callable(arg))
    raise SpecError(f"cannot read policy {raw!r}: expected a name such as 'latest', "
                    "or one of {prefer: [systems]}, {owner: system}, {custom: dotted.path}")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One canonical field: its type, the systems that carry it, its policy override."""

    name: str
    type: FieldType = FieldType.ANY
    systems: frozenset[str] | None = None  # None: every system of the entity
    policy: Policy | None = None
    # Systems that report the field but are never written it (a one-way mapping there).
    read_only: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has this field's type (``None`` always does)."""
        return value is None or _TYPE_CHECKS[self.type](value)


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """Everything the fold needs to know about one entity."""

    name: str
    systems: tuple[str, ...]
    fields: Mapping[str, FieldSpec]
    default_policy: Policy = Latest()
    delete_policy: DeletePolicy = DeletePolicy.MANUAL
    max_write_attempts: int = 5
    history_limit: int = 32
    closed_conflicts_kept: int = 16
    # Derived, filled in __post_init__: per system, the fields it carries (in field order).
    system_fields: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    # Per system, the fields the hub writes there: those it carries and may be written.
    system_writes: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    rank: Mapping[str, int] = field(init=False, repr=False, compare=False)
    # Per system, field name -> the type check of its values (None: any value).
    checks: Mapping[str, Mapping[str, Callable[[Any], bool] | None]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.systems) < 1 or len(set(self.systems)) != len(self.systems):
            raise SpecError(f"entity {self.name!r}: systems must be a non-empty list "
                            "without repeats")
        for reserved in (REVIEW, MERGE):
            if reserved in self.systems:
                raise SpecError(f"entity {self.name!r}: {reserved!r} is a reserved actor, "
                                "not a system name")
        if not self.fields:
            raise SpecError(f"entity {self.name!r}: no fields")
        known = set(self.systems)
        for f in self.fields.values():
            if f.systems is not None and not f.systems <= known:
                unknown = ", ".join(sorted(f.systems - known))
                raise SpecError(f"entity {self.name!r}, field {f.name!r}: unknown systems "
                                f"{unknown}")
            self._check_policy(f.policy or self.default_policy, f)
        if self.max_write_attempts < 1 or self.history_limit < 1:
            raise SpecError(f"entity {self.name!r}: limits must be at least 1")
        per_system = {
            s: tuple(n for n, f in self.fields.items() if f.systems is None or s in f.systems)
            for s in self.systems
        }
        object.__setattr__(self, "system_fields", per_system)
        object.__setattr__(self, "system_writes", {
            s: frozenset(n for n in names if s not in self.fields[n].read_only)
            for s, names in per_system.items()})
        object.__setattr__(self, "checks", {
            s: {n: None if self.fields[n].type is FieldType.ANY else
                _TYPE_CHECKS[self.fields[n].type] for n in names}
            for s, names in per_system.items()})
        # A person's decision ranks before every system when timestamps tie.
        object.__setattr__(self, "rank", {REVIEW: -2, MERGE: -1, **{s: i for i, s in
                                                           enumerate(self.systems)}})

    def _check_policy(self, policy: Policy, f: FieldSpec) -> None:
        where = f"entity {self.name!r}, field {f.name!r}"
        if isinstance(policy, Prefer) and not set(policy.systems) <= set(self.systems):
            raise SpecError(f"{where}: prefer names unknown systems {list(policy.systems)}")
        if isinstance(policy, Owner) and policy.system not in self.systems:
            raise SpecError(f"{where}: owner {policy.system!r} is not a system of the entity")
        if isinstance(policy, Union) and f.type not in (FieldType.LIST, FieldType.ANY):
            raise SpecError(f"{where}: union needs a list field, not {f.type.value}")
        if isinstance(policy, Max | Min) and f.type in (
            FieldType.LIST, FieldType.OBJECT, FieldType.BOOLEAN
        ):
            raise SpecError(f"{where}: {policy.name} needs numbers or strings")

    def policy_for(self, name: str) -> Policy:
        """The policy that decides conflicts on field ``name``."""
        return self.fields[name].policy or self.default_policy

    @classmethod
    def build(
        cls,
        name: str,
        systems: Iterable[str],
        fields: Iterable[FieldSpec | str],
        **options: Any,
    ) -> EntitySpec:
        """Convenience constructor: fields as :class:`FieldSpec` or bare names."""
        specs = [f if isinstance(f, FieldSpec) else FieldSpec(f) for f in fields]
        return cls(name=name, systems=tuple(systems), fields={f.name: f for f in specs},
                   **options)

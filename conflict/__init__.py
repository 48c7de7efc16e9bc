"""The pure core of syncline: version vectors, record state, the fold and conflict policies.

Nothing here does I/O, reads a clock or draws randomness: time, actors and ids are arguments.

The modules run interpreted, or compiled by mypyc (``make compile``, tools/compile_fold.sh):
the same source either way; :func:`compiled` says which.
"""

import sys

from conflict.clock import Dot, Order, VClock
from conflict.errors import (
    ConflictError,
    FieldTypeError,
    InputError,
    LinkMismatch,
    SpecError,
    UnknownConflict,
    UnknownField,
    UnknownIntent,
    UnknownSystem,
)
from conflict.fold import Step, fold
from conflict.inputs import Input, Observation, Observed, Resolve, WriteFailed, WriteStale, Written
from conflict.policy import decide
from conflict.spec import (
    MERGE,
    REVIEW,
    Custom,
    DeletePolicy,
    EntitySpec,
    FieldSpec,
    FieldType,
    Latest,
    Manual,
    Max,
    Min,
    Owner,
    Policy,
    Prefer,
    Union,
    parse_policy,
)
from conflict.state import (
    DELETE_FIELD,
    Candidate,
    Change,
    ConflictRecord,
    ConflictStatus,
    Decision,
    FieldState,
    HistoryEntry,
    PeerState,
    RecordState,
    ResolutionInfo,
    Tombstone,
    WriteIntent,
    WriteOp,
)
from conflict.values import same, value_key


def compiled() -> bool:
    """Whether the fold runs compiled by mypyc rather than interpreted."""
    source = getattr(sys.modules["conflict.fold"], "__file__", None) or ""
    return not source.endswith(".py")


__all__ = [
    "DELETE_FIELD",
    "MERGE",
    "REVIEW",
    "Candidate",
    "Change",
    "ConflictError",
    "ConflictRecord",
    "ConflictStatus",
    "Custom",
    "Decision",
    "DeletePolicy",
    "Dot",
    "EntitySpec",
    "FieldSpec",
    "FieldState",
    "FieldType",
    "FieldTypeError",
    "HistoryEntry",
    "Input",
    "InputError",
    "Latest",
    "LinkMismatch",
    "Manual",
    "Max",
    "Min",
    "Observation",
    "Observed",
    "Order",
    "Owner",
    "PeerState",
    "Policy",
    "Prefer",
    "RecordState",
    "ResolutionInfo",
    "Resolve",
    "SpecError",
    "Step",
    "Tombstone",
    "Union",
    "UnknownConflict",
    "UnknownField",
    "UnknownIntent",
    "UnknownSystem",
    "VClock",
    "WriteFailed",
    "WriteIntent",
    "WriteOp",
    "WriteStale",
    "Written",
    "compiled",
    "decide",
    "fold",
    "parse_policy",
    "same",
    "value_key",
]

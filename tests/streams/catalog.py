"""The entity catalog the stream tests run the worker with (``tests.streams.catalog:CATALOG``)."""

from __future__ import annotations

import conflict
from streams.merge import EntityModel

CONTACT = conflict.EntitySpec.build(
    "contact", ["crm", "helpdesk"],
    [conflict.FieldSpec("email", conflict.FieldType.STRING),
     conflict.FieldSpec("name", conflict.FieldType.STRING),
     conflict.FieldSpec("tags", conflict.FieldType.LIST, policy=conflict.Union())])

CATALOG = {"contact": EntityModel(CONTACT, match_on=("email",))}

"""How fields map to systems in the config file, and what each mistake there says."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError

GOOD = """\
kafka: {bootstrap: 127.0.0.1:19092}
systems:
  crm: {base_url: 'http://127.0.0.1:8101'}
  helpdesk: {base_url: 'http://127.0.0.1:8102'}
entities:
  contact:
    fields:
      email: {crm: email, helpdesk: contact.email_address, transform: email, type: string}
      status:
        type: string
        crm: lifecycle
        helpdesk: {path: state, map: {open: new, pending: new, closed: done}}
      age: {crm: {path: age, cast: integer}, type: integer}
      seen: {crm: {path: last_seen, date: unix_ms}, helpdesk: {path: seen, date: iso}}
      tags: {crm: {path: labels, transform: [lower, sort]}, type: list}
      score: {crm: {path: score, direction: read}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncline.yaml"
    path.write_text(text)
    return path


def test_a_field_maps_to_a_path_or_to_a_mapping_per_system(tmp_path: Path) -> None:
    entity = load_config(write(tmp_path, GOOD), {}).entities["contact"]
    crm, helpdesk = entity.mapping("contact", "crm"), entity.mapping("contact", "helpdesk")

    assert entity.fields["email"].names == {"crm": "email",
                                            "helpdesk": "contact.email_address"}
    assert entity.fields["age"].systems["crm"].cast is not None
    assert crm.to_canonical({"email": " Ada@X.org", "age": "42", "labels": ["B", "a"],
                             "last_seen": 1714566896789}).values == {
        "email": "ada@x.org", "age": 42, "tags": ["a", "b"],
        "seen": "2024-05-01T12:34:56.789Z"}
    assert helpdesk.to_system({"email": "Ada@X.org", "seen": "2024-05-01T12:34:56Z"}) == {
        "contact": {"email_address": "ada@x.org"}, "seen": "2024-05-01T12:34:56Z"}
    assert crm.writable == {"email", "status", "age", "seen", "tags"}
    assert crm.one_way == {"score": "direction: read"}
    assert "value map not invertible" in helpdesk.one_way["status"]


@pytest.mark.parametrize(("change", "where", "words"), [
    (("transform: email,", "transform: emial,"),
     ":8: entities.contact.fields.email.transform: ",
     "expected one of lower, upper, strip, collapse_whitespace, email, phone, sort, or a "
     "list of them, got 'emial'"),
    (("transform: [lower, sort]", "transform: [lower, shuffle]"),
     ":15: entities.contact.fields.tags.crm.transform: ", "got ['lower', 'shuffle']"),
    (("cast: integer}", "cast: int}"),
     ":13: entities.contact.fields.age.crm.cast: ",
     "expected one of string, integer, number, boolean, or system: and canonical:, got 'int'"),
    (("cast: integer}", "cast: {system: integer, canonical: number}}"),
     ":13: entities.contact.fields.age.crm.cast: ",
     "exactly one of system: and canonical: must be string"),
    (("cast: integer}, type: integer", "cast: integer}, type: string"),
     ":13: entities.contact.fields.age: ",
     "crm: gives integer values, but the field's type is string"),
    (("date: unix_ms}", "date: epoch}"),
     ":14: entities.contact.fields.seen.crm.date: ",
     "expected one of iso, iso_ms, unix, unix_ms, date, or a strftime pattern"),
    (("date: iso}", "date: '%Q'}"),
     ":14: entities.contact.fields.seen.helpdesk.date: ",
     "the pattern '%Q' cannot read back what it writes"),
    (("closed: done}}", "closed: done}, write_default: shut}"),
     ":12: entities.contact.fields.status.helpdesk: ",
     "write_default 'shut' is not a system value of map: (expected one of 'open', "
     "'pending', 'closed')"),
    (("closed: done}}", "closed: done}, direction: write}"),
     ":12: entities.contact.fields.status.helpdesk: ",
     "direction: write, but map: cannot be inverted ('new' comes from 'open' and 'pending')"),
    (("{path: age, cast: integer}", "{path: age, cast: integer, map: {'1': one}}"),
     ":13: entities.contact.fields.age.crm: ",
     "the keys of map: are the values cast: reads, so '1' should be an integer"),
    (("{path: score, direction: read}", "{path: score, direction: sideways}"),
     ":16: entities.contact.fields.score.crm.direction: ", "expected 'both', 'read' or 'write'"),
    (("{path: score, direction: read}", "{path: score, tranform: lower}"),
     ":16: entities.contact.fields.score.crm.tranform: ",
     "unknown key (allowed: path, write_path, transform, map, write_default, cast, date, "
     "direction, ref)"),
    (("{path: score, direction: read}", "{path: 'a..b'}"),
     ":16: entities.contact.fields.score.crm.path: ", "expected a dotted path"),
    (("{path: score, direction: read}", "{direction: read}"),
     ":16: entities.contact.fields.score.crm.path: ", "required, but missing"),
    (("{path: score, direction: read}", "42"),
     ":16: entities.contact.fields.score.crm: ",
     "expected the field's path there (a string such as address.city) or a mapping with "
     "path:, got 42"),
    (("{path: score, direction: read}", "{path: score, ref: company}"),
     ":16: entities.contact.fields.score.crm.ref: ", "'company' is not one of the entities"),
    (("score: {crm:", "score: {ref: company, crm:"),
     ":16: entities.contact.fields.score: ", "'ref' is not a system of this file"),
    (("{path: score, direction: read}", "email"),
     ":6: entities.contact: ", "crm: fields email and score would both be written at email"),
    (("type: list}", "type: string}"),
     ":15: entities.contact.fields.tags: ", "crm: transform sort needs a list field"),
])
def test_a_wrong_mapping_names_the_file_the_line_and_the_path(
        tmp_path: Path, change: tuple[str, str], where: str, words: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    message = str(raised.value)
    assert f"{path}{where}" in message and words in message, message


def test_the_email_field_of_the_design_sketch_loads(tmp_path: Path) -> None:
    path = write(tmp_path, """\
kafka: {bootstrap: 127.0.0.1:19092}
systems: {crm: {base_url: 'http://h:1'}, helpdesk: {base_url: 'http://h:2'}}
entities:
  contact:
    match_on: [email]
    fields:
      email: {crm: email, helpdesk: email_address, transform: lower}
      name:  {crm: full_name, helpdesk: name}
      tags:  {crm: labels, helpdesk: tags}
    policy: {default: latest, tags: union, name: manual}
""")
    entity = load_config(path, {}).entities["contact"]

    assert entity.mapping("contact", "helpdesk").to_canonical(
        {"email_address": "A@B", "name": "Ada", "tags": ["x"]}).values == {
        "email": "a@b", "name": "Ada", "tags": ["x"]}

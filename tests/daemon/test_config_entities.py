"""The entities: part of the config file, and the fold specs built from it."""

from __future__ import annotations

from pathlib import Path

import pytest

import conflict
from daemon.config import load_config
from daemon.errors import ConfigError

GOOD = """\
kafka: {bootstrap: 127.0.0.1:19092}
systems:
  helpdesk: {base_url: 'http://127.0.0.1:8102'}
  crm: {base_url: 'http://127.0.0.1:8101'}
entities:
  contact:
    match_on: [email]
    fields:
      email: {crm: email, helpdesk: email_address, type: string}
      name:  {crm: full_name, helpdesk: name}
      tags:  {crm: labels, helpdesk: tags, type: list}
      stage: {crm: lifecycle_stage}
    policy: {default: latest, tags: union, name: manual, stage: {owner: crm}}
    delete_policy: update_wins
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncline.yaml"
    path.write_text(text)
    return path


def test_entities_become_the_folds_specs(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {})
    model = config.catalog()["contact"]
    spec = model.spec
    assert model.match_on == ("email",)
    assert spec.systems == ("helpdesk", "crm")  # the order of systems: in the file
    assert spec.fields["email"].type is conflict.FieldType.STRING
    assert spec.fields["stage"].systems == frozenset({"crm"})
    assert spec.system_fields["helpdesk"] == ("email", "name", "tags")
    assert spec.policy_for("tags") == conflict.Union()
    assert spec.policy_for("name") == conflict.Manual()
    assert spec.policy_for("stage") == conflict.Owner("crm")
    assert spec.policy_for("email") == conflict.Latest()
    assert spec.delete_policy is conflict.DeletePolicy.UPDATE_WINS
    assert config.entities["contact"].fields["name"].names == {"crm": "full_name",
                                                              "helpdesk": "name"}


@pytest.mark.parametrize(("change", "where", "words"), [
    (("email: {crm: email,", "email: {erp: email, crm: email,"),
     ":9: entities.contact.fields.email: ", "'erp' is not a system of this file"),
    (("stage: {crm: lifecycle_stage}", "stage: {type: string}"),
     ":12: entities.contact.fields.stage: ", "no system carries this field"),
    (("tags: union,", "tags: newest,"),
     ":6: entities.contact: ", "policy.tags: unknown policy 'newest'"),
    (("tags: union,", "colour: union,"),
     ":6: entities.contact: ", "policy names 'colour'"),
    (("match_on: [email]", "match_on: [phone]"),
     ":6: entities.contact: ", "match_on names 'phone'"),
    (("{owner: crm}", "{owner: erp}"),
     ":6: entities.contact: ", "owner 'erp' is not a system of the entity"),
    (("tags: union,", "email: union,"),
     ":6: entities.contact: ", "union needs a list field, not string"),
    (("type: list}", "type: set}"),
     ":11: entities.contact.fields.tags.type: ", "expected 'any', 'string'"),
    (("delete_policy: update_wins", "delete_policy: sometimes"),
     ":14: entities.contact.delete_policy: ", "expected 'delete_wins'"),
])
def test_a_wrong_entity_names_the_file_the_line_and_the_path(
        tmp_path: Path, change: tuple[str, str], where: str, words: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    message = str(raised.value)
    assert f"{path}{where}" in message and words in message, message


def test_a_one_way_mapping_makes_the_field_read_only_there_in_the_folds_spec(
        tmp_path: Path) -> None:
    text = GOOD.replace(
        "      stage: {crm: lifecycle_stage}",
        "      stage: {crm: lifecycle_stage, helpdesk: {path: state, "
        "map: {open: lead, pending: lead, solved: customer}}}")
    spec = load_config(write(tmp_path, text), {}).catalog()["contact"].spec

    assert spec.fields["stage"].read_only == frozenset({"helpdesk"})
    assert "stage" not in spec.system_writes["helpdesk"]
    assert "stage" in spec.system_writes["crm"]

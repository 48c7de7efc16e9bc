"""The configuration keys real APIs needed: what loads, and what each mistake says."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
HEAD = "kafka: {bootstrap: 'k:1'}\nsystems:\n  api:\n    base_url: http://x\n    entities:\n"


def write(tmp_path: Path, entity: str) -> Path:
    path = tmp_path / "syncline.yaml"
    path.write_text(HEAD + "      contact:\n" + "".join(
        f"        {line}\n" for line in entity.splitlines())
        + "entities:\n  contact: {match_on: [email], fields: {email: {api: email}}}\n",
        encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return [p.replace(str(path), "{f}") for p in caught.value.problems]


def test_the_real_systems_example_loads() -> None:
    config = load_config(REPO / "examples" / "real-nocodb-keycloak.yaml",
                         {"NOCO_TOKEN": "t", "KEYCLOAK_CLIENT_SECRET": "s",
                          "NOCO_HOOK_SECRET": "h"})

    hooks = config.systems["nocodb"].webhooks
    assert hooks is not None and (hooks.scheme, hooks.id_at) == ("header", "data.rows[*].Id")
    noco = config.systems["nocodb"].entities["contact"]
    keycloak = config.systems["keycloak"].entities["contact"]
    assert noco.updated == ("UpdatedAt", "CreatedAt")
    assert noco.update.id_field == "Id" and noco.update.answer == "id"
    assert keycloak.updated == ()
    assert keycloak.create.defaults == {"username": "{email}"}
    assert keycloak.create.constants == {"enabled": True}


def test_a_query_string_in_a_path_becomes_params(tmp_path: Path) -> None:
    path = write(tmp_path, "path: /users?brief=false&max=5\nparams: {realm: r}\n"
                           "update: {method: PUT, path: '/users/{id}?partial=1'}\n"
                           "lookup: {path: '/users?exact=true', params: {email: '{email}'}}")

    endpoint = load_config(path, {}).systems["api"].entities["contact"]

    assert (endpoint.path, endpoint.params) == ("/users", {"realm": "r", "brief": "false",
                                                           "max": "5"})
    assert (endpoint.update.path, endpoint.update.params) == ("/users/{id}", {"partial": "1"})
    assert endpoint.lookup is not None
    assert endpoint.lookup.params == {"email": "{email}", "exact": "true"}


def test_updated_takes_one_field_a_list_or_none(tmp_path: Path) -> None:
    for text, expected in (("updated: modified", ("modified",)),
                           ("updated: [u, c]", ("u", "c")), ("updated: []", ()),
                           ("updated: null", ())):
        endpoint = load_config(write(tmp_path, "path: /x\n" + text), {}).systems["api"]
        assert endpoint.entities["contact"].updated == expected


@pytest.mark.parametrize(("entity", "expected"), [
    ("path: /users?brief=false\nparams: {brief: 'true'}",
     "{f}:6: systems.api.entities.contact: path: the query parameter 'brief' is both in the "
     "path and in params: (keep one)"),
    ("path: /users\nitem_path: '/users/{id}?full=1'",
     "{f}:6: systems.api.entities.contact: item_path: a query string here would be sent with "
     "reads of one record only; put it in params: (every request) or in path:, got "
     "'/users/{id}?full=1'"),
    ("path: /users\nupdate: {method: PATCH, path: /users}",
     "{f}:6: systems.api.entities.contact: update.path: {id} is not in it and there is no "
     "update.id_field: nothing would say which record to change, got '/users'"),
    ("path: /users\ncreate: {method: POST, id_field: Id}",
     "{f}:6: systems.api.entities.contact: create.id_field: a create has no id yet (id_field "
     "is for updates and deletes)"),
    ("path: /users\nupdate: {method: PUT, defaults: {a: 1}}",
     "{f}:6: systems.api.entities.contact: update: defaults: and constants: apply to creates "
     "only"),
    ("path: /users\ncreate: {method: POST, answer: none}",
     "{f}:6: systems.api.entities.contact: create.answer: none needs a lookup: (or drop it "
     "and let the Location header say where the record is)"),
    ("path: /users\ncreate: {method: POST, defaults: {username: '{email'}}",
     "{f}:8: systems.api.entities.contact.create: defaults.username: not a valid template "
     "(expected '}' before end of string); write {{ and }} for literal braces, got '{email'"),
    ("path: /users\ncreate: {method: POST, defaults: {a: 1}, constants: {a: 2}}",
     "{f}:8: systems.api.entities.contact.create: 'a' is both in defaults: and in constants: "
     "(keep one)"),
    ("path: /users\ncreate: {method: POST, defaults: {username: '{e-mail}'}}",
     "{f}:8: systems.api.entities.contact.create: defaults.username: expected placeholders "
     "naming the system's fields (such as {email} or {address.city}), got {e-mail} in "
     "'{e-mail}'"),
    ("path: /users\nenvelope: {read: data, wirte: data}",
     "{f}:8: systems.api.entities.contact.envelope.wirte: unknown key (allowed: read, write)"),
    ("path: /users\nupdated: 3",
     "{f}:8: systems.api.entities.contact.updated: expected a field name or a list of "
     "field names (tried in order), got 3"),
])
def test_each_mistake_names_the_file_and_the_path(tmp_path: Path, entity: str,
                                                  expected: str) -> None:
    assert problems(write(tmp_path, entity)) == [expected]


def test_a_constant_where_a_field_writes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "syncline.yaml"
    path.write_text(HEAD + "      contact:\n        path: /users\n"
                    "        create: {method: POST, constants: {profile: {a: 1}}}\n"
                    "entities:\n  contact:\n    match_on: [email]\n"
                    "    fields: {email: {api: email}, city: {api: profile.city}}\n",
                    encoding="utf-8")

    assert problems(path) == [
        "{f}:8: systems.api.entities.contact.create.constants.profile: the field city writes "
        "profile.city in api: a constant there would override it on every create (use "
        "defaults: for a value used only where the field is empty)"]

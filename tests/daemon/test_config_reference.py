"""The configuration's JSON Schema and its reference (docs/CONFIG.md), from the models.

The schema must accept every shipped example and refuse a broken file; the reference must be
exactly what ``syncline config reference`` renders now, and name every key with a
description and an example.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from daemon.configdoc import config_reference, config_schema, example_of

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_reference_in_docs_is_up_to_date_with_the_models() -> None:
    written = (REPO / "docs" / "CONFIG.md").read_text(encoding="utf-8")

    assert written == config_reference(), (
        "docs/CONFIG.md is out of date: run `syncline config reference > docs/CONFIG.md`")


def test_the_cli_prints_the_schema_and_the_reference() -> None:
    schema = subprocess.run([sys.executable, "-m", "daemon", "config", "schema"],
                            capture_output=True, text=True, check=False, cwd=REPO, timeout=60)
    reference = subprocess.run([sys.executable, "-m", "daemon", "config", "reference"],
                               capture_output=True, text=True, check=False, cwd=REPO,
                               timeout=60)

    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout) == config_schema()
    assert reference.returncode == 0, reference.stderr
    assert reference.stdout == config_reference()


def every_key(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, definition in [("Config", schema), *schema["$defs"].items()]:
        bodies = [o for o in definition.get("anyOf", []) if "properties" in o] or [definition]
        for key, prop in bodies[0].get("properties", {}).items():
            found.append((name, key, prop))
    return found


def test_every_key_has_a_description_and_an_example_in_the_reference() -> None:
    schema = config_schema()
    reference = config_reference()
    keys = every_key(schema)

    missing = [f"{model}.{key}" for model, key, prop in keys
               if not prop.get("description") or (example_of(prop) is None
               and "const" not in prop)]
    assert missing == []
    assert len(keys) > 140
    for model, key, _ in keys:
        assert f"- **`{key}`** — " in reference, f"{model}.{key} is not in the reference"
    assert "system value -> canonical value" in reference  # the direction of value maps
    assert "`{{` and `}}` are a\nliteral `{` and `}`" in reference  # template escaping


def test_secrets_have_no_key_of_their_own_in_the_schema() -> None:
    keys = {(model, key) for model, key, _ in every_key(config_schema())}

    assert ("SaslConfig", "password_env") in keys
    assert ("SaslConfig", "password") not in keys
    assert ("SslConfig", "key_password") not in keys


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_schema_accepts_the_shipped_examples(example: Path) -> None:
    errors = list(validator().iter_errors(yaml.safe_load(example.read_text(encoding="utf-8"))))

    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_the_schema_accepts_the_short_forms_the_loader_accepts() -> None:
    config = yaml.safe_load("""
kafka: {bootstrap: 127.0.0.1:9092}
systems:
  crm:
    base_url: http://crm
    entities:
      contact: {path: /contacts, envelope: data, updated: UpdatedAt}
entities:
  contact:
    fields:
      email: {crm: email, transform: email}
      age: {crm: {path: age, cast: integer, transform: [strip]}}
      state: {crm: {path: state, map: {new: open, reopened: open}, write_default: new}}
""")

    assert list(validator().iter_errors(config)) == []


@pytest.mark.parametrize(("text", "where"), [
    ("systems: {}\n", []),  # no kafka:
    ("kafka: {bootstrap: 127.0.0.1:9092, colour: blue}\n", ["kafka"]),
    ("kafka: {bootstrap: 127.0.0.1:9092, topics: {partitions: 0}}\n",
     ["kafka", "topics", "partitions"]),
    ("kafka: {bootstrap: 127.0.0.1:9092}\nsystems: {crm: {base_url: http://c, entities: "
     "{contact: {path: /c, since: {param: x, format: rfc822}}}}}\n",
     ["systems", "crm", "entities", "contact", "since", "format"]),
    ("kafka: {bootstrap: 127.0.0.1:9092, sasl: {username: u, password: hunter2, "
     "password_env: P}}\n", ["kafka", "sasl"]),  # a secret written in the file
])
def test_the_schema_refuses_a_bad_config(text: str, where: list[str]) -> None:
    errors = list(validator().iter_errors(yaml.safe_load(text)))
    every = list(flatten(errors))

    assert errors
    assert any(list(e.absolute_path) == where for e in every), [
        (list(e.absolute_path), e.message) for e in every]


def flatten(errors: list[jsonschema.ValidationError]) -> Any:
    """The errors and, for a value that fits none of several forms, each form's errors."""
    for error in errors:
        yield error
        yield from flatten(list(error.context or []))

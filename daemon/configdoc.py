"""The configuration file described for people and for editors, from the models themselves.

:func:`config_schema` is the JSON Schema of the file (``syncline config schema``): pydantic's
schema of :class:`~daemon.config.Config`, with the short forms the loader also accepts
(``crm: email`` for ``crm: {path: email}``, ``envelope: user``, ``updated: UpdatedAt``,
``transform: email``, ``cast: integer``) and without the secrets' own keys, which the file
may not hold. :func:`config_reference` renders it as ``docs/CONFIG.md`` (``syncline config
reference``): every key with its type, default, description and an example. A test keeps
the file equal to what this module renders, so the reference cannot drift from the models.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import yaml

from daemon.config import Config

_PLACEHOLDERS = {"systems": "<system>", "entities": "<entity>", "fields": "<field>"}

_SHORT_FORMS: dict[str, dict[str, Any]] = {
    "SystemField": {"type": "string", "description": "short for {path: <this>}"},
    "Cast": {"enum": ["string", "integer", "number", "boolean"],
             "description": "short for {system: string, canonical: <this>}"},
    "EnvelopeConfig": {"type": "string", "description": "the same key for reads and writes"},
}


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the configuration file."""
    schema = Config.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema["$defs"]
    for definition in defs.values():
        props = definition.get("properties", {})
        for name in [n for n in props if f"{n}_env" in props]:  # secrets come from _env
            del props[name]
            if name in definition.get("required", []):
                definition["required"].remove(name)
    transforms = copy.deepcopy(defs["FieldConfig"]["properties"]["transform"]["items"])
    for holder in (defs["FieldConfig"], defs["SystemField"]):
        _one_or_list(holder["properties"]["transform"], transforms)
    _one_or_list(defs["EntityEndpointConfig"]["properties"]["updated"], {"type": "string"},
                 nullable=True)
    write_default = defs["SystemField"]["properties"]["write_default"]
    for key in ("type", "items"):
        write_default.pop(key, None)
    for name, short in _SHORT_FORMS.items():
        full = defs[name]
        defs[name] = {"title": full.pop("title"), "description": full.pop("description"),
                      "anyOf": [short, full]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "syncline configuration file"}


def _one_or_list(prop: dict[str, Any], item: dict[str, Any], *, nullable: bool = False) -> None:
    for key in ("type", "items", "maxItems", "minItems", "prefixItems"):
        prop.pop(key, None)
    prop["anyOf"] = [item, {"type": "array", "items": item}] + (
        [{"type": "null"}] if nullable else [])


# -- the reference --------------------------------------------------------------------------
def config_reference() -> str:
    """``docs/CONFIG.md``: every key of the file, rendered from :func:`config_schema`."""
    schema = config_schema()
    defs = schema["$defs"]
    # Breadth first from the top: each model once, under the first key path that leads to
    # it, naming the other paths that lead there too.
    places: dict[str, list[str]] = {}
    order: list[str] = []
    queue: list[tuple[str, str]] = [("(top level)", "Config")]
    while queue:
        where, name = queue.pop(0)
        if where in places.get(name, []):
            continue
        if name not in places:
            order.append(name)
            definition = schema if name == "Config" else defs[name]
            queue += [(_join(where, suffix), ref) for ref, suffix in _children(definition)]
        places.setdefault(name, []).append(where)
    out = [_PREAMBLE]
    for name in order:
        out += _section(places[name], name, schema if name == "Config" else defs[name], defs)
    out.append(_APPENDIX)
    return "\n".join(out)


def _children(definition: dict[str, Any]) -> Iterator[tuple[str, str]]:
    body = _object_of(definition)
    for key, prop in body.get("properties", {}).items():
        yield from _refs(prop, key)
    extra = body.get("additionalProperties")
    if isinstance(extra, dict):
        for ref, _ in _refs(extra, ""):
            yield ref, "<system>"


def _object_of(definition: dict[str, Any]) -> dict[str, Any]:
    """The object form of a definition that also has a short form."""
    for option in definition.get("anyOf", []):
        if "properties" in option:
            return option  # type: ignore[no-any-return]
    return definition


def _section(places: list[str], name: str, definition: dict[str, Any], defs: dict[str, Any]
             ) -> list[str]:
    body = _object_of(definition)
    kind = body.get("properties", {}).get("type", {}).get("const")
    title = f"`{places[0]}`" + (f" with `type: {kind}`" if kind else "")
    lines = [f'<a id="{name.lower()}"></a>', f"## {title}", ""]
    if places[0] != "(top level)":
        also = "; also " + ", ".join(f"`{p}`" for p in places[1:]) if len(places) > 1 else ""
        lines += [f"*{name}*{also}", ""]
    description = definition.get("description") or body.get("description") or ""
    description = description.split("Attributes:")[0]
    for paragraph in description.split("\n\n"):
        if paragraph.strip():
            lines += [_clean(paragraph), ""]
    short = [o for o in definition.get("anyOf", []) if "properties" not in o]
    for form in short:
        lines += [f"Short form: {_type_of(form, defs)} ({form.get('description', '')}).", ""]
    required = set(body.get("required", []))
    for key, prop in body.get("properties", {}).items():
        lines += _key(key, prop, key in required, defs)
    extra = body.get("additionalProperties")
    if isinstance(extra, dict):
        lines += [f"- **`<system>`** — {_type_of(extra, defs)}. Every other key names a system "
                  "and says where and how the field lives there. Example: `crm: full_name`", ""]
    return lines


def _join(where: str, suffix: str) -> str:
    return suffix if where == "(top level)" else f"{where}.{suffix}"


def _refs(prop: dict[str, Any], key: str) -> Iterator[tuple[str, str]]:
    """The models a property refers to, with the key path that leads into each."""
    if "$ref" in prop:
        yield prop["$ref"].rsplit("/", 1)[-1], key
    for option in prop.get("anyOf", []) + prop.get("oneOf", []):
        yield from _refs(option, key)
    extra = prop.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _refs(extra, f"{key}.{_PLACEHOLDERS.get(key, '<name>')}")
    items = prop.get("items")
    if isinstance(items, dict):
        yield from _refs(items, key)


def _key(key: str, prop: dict[str, Any], required: bool, defs: dict[str, Any]) -> list[str]:
    kind = _type_of(prop, defs)
    if required:
        status = "required"
    elif "default" in prop:
        status = f"default `{_flow(prop['default'])}`"
    else:
        status = "optional"
    text = f"- **`{key}`** — {kind}; {status}. {_clean(prop.get('description', ''))}"
    example = example_of(prop)
    if example is not None:
        text += f" Example: `{key}: {_flow(example)}`"
    return [text, ""]


def example_of(prop: dict[str, Any]) -> Any:
    """A key's example: its own, else its default when that says something (not empty)."""
    examples = prop.get("examples")
    if examples:
        return examples[0]
    default = prop.get("default")
    return None if default in (None, {}, [], "") else default


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        ref = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{ref}](#{ref.lower()})"
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    options = prop.get("anyOf") or prop.get("oneOf")
    if options and len(options) >= 2 and options[1].get("items") == options[0]:
        return f"{_type_of(options[0], defs)}, or a list of them"
    if options:
        kinds = [_type_of(o, defs) for o in options if o.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds))
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items")
        return f"a list of {_type_of(items, defs)}" if isinstance(items, dict) else "a list"
    if kind == "object":
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"a mapping of name to {_type_of(extra, defs)}"
        return "a mapping"
    names = {"string": "a string", "integer": "an integer", "number": "a number",
             "boolean": "true or false"}
    text = names.get(str(kind), "any value")
    bounds = [f"{sign} {prop[key]}" for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                        ("maximum", "<="),
                                                        ("exclusiveMaximum", "<"))
              if key in prop]
    if prop.get("minLength"):
        bounds.append("not empty")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _flow(value: Any) -> str:
    """A value as YAML on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _clean(text: str) -> str:
    """A docstring paragraph as one Markdown paragraph (reST roles and ````code```` as
    Markdown code)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", " ".join(text.split()))
    return text.replace("``", "`")


_PREAMBLE = """\
# Configuration reference

<!-- Generated by `syncline config reference > docs/CONFIG.md` from the configuration's
pydantic models (daemon/config.py, daemon/connector/config.py, daemon/mapping.py,
streams/settings.py). Do not edit by hand: change the models' docstrings and examples, then
regenerate; tests/daemon/test_config_reference.py fails while this file is out of date. -->

The configuration file is YAML. Every section below is one part of it; unknown keys are
refused, and every mistake is reported as `FILE:LINE: PATH: what was expected`.
`syncline check --config FILE` validates a file and proves it can sync against the systems
(`--write-probe` also writes); `syncline config schema` prints the JSON Schema of the file,
for editors (with the YAML language server: `# yaml-language-server: $schema=config.json`
at the top of the file, after `syncline config schema > config.json`).

A complete, commented example: `examples/syncline.yaml`; one for real systems (NocoDB and
Keycloak): `examples/real-nocodb-keycloak.yaml`.

**Secrets** are never written in the file. A key ending in `_env` names an environment
variable that holds the secret (`token_env: CRM_TOKEN`); `CRM_TOKEN_FILE` may instead name
a file holding it (Docker and Kubernetes secrets).
"""

_APPENDIX = """\
## Templates and escaping

Some values are templates: `lookup.params` values, `create.defaults` strings,
`since.template` and `check.scratch` strings. `{name}` is replaced by a value — a dotted path
into the system's record (`{email}`, `{address.city}`) for lookups and defaults, `{since}`
for the since filter, `{nonce}` (a fresh random token) for scratch records. A value the
record lacks is an empty string. Braces that are text are doubled: `{{` and `}}` are a
literal `{` and `}` — a filter written as JSON reads `"{{\\"updated\\": {{\\"$gte\\":
\\"{since}\\"}}}}"`. Anything else in braces is refused when the file is loaded.

## Value maps: which way they go

`map:` in a field's system entry goes **from the system's value to the canonical value**:
`helpdesk: {path: state, map: {new: open, done: closed}}` reads the helpdesk's `new` as the
canonical `open`, and writes the canonical `open` to the helpdesk as `new`. When two system
values map to one canonical value (`{new: open, reopened: open}`), writing cannot choose by
itself: `write_default: new` names the system value to write (one per such canonical
value); without it the field is read-only there. Reading applies, in order: `cast` or
`date`, then `map`, then the `transform`s (the field's own, then the system's); writing runs
the same steps backwards.

## Query strings

A query string written into a `path` (`/users?briefRepresentation=false`) is sent with every
request to that path, like `params:`; `syncline check` prints each request with its query. A
parameter given both in a path and in `params:`, or one the since filter or the paging
would replace, is refused when the file is loaded, as is a query string in `base_url` or
`item_path` (it would be dropped or sent with some requests only).
"""

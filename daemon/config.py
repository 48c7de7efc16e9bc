"""The configuration file: its schema, and loading it with errors a person can act on.

The file is YAML, validated by pydantic models that forbid unknown keys. Secrets are never
in the file: it names an environment variable (``password_env: KAFKA_PASSWORD``) and the
value is taken from the environment mapping handed to :func:`load_config`, held as
``SecretStr``. Nothing here reads ``os.environ``; the CLI reads it once and passes it in.

Every problem becomes one line ``FILE:LINE: PATH: what was expected``, for example::

    syncline.yaml:3: kafka.bootstrap: expected host:port[,host:port...], got 'localhost'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from conflict import DeletePolicy, EntitySpec, FieldSpec, FieldType, SpecError, parse_policy
from daemon.configbase import (
    CONFIG_ERROR,
    EnvName,
    SecretSection,
    Section,
    config_error,
    existing_file,
    secret,
)
from daemon.connector.config import SystemConfig
from daemon.errors import ConfigError
from daemon.mapping import (
    MAPPING_ERROR,
    EntityMapping,
    FieldMapper,
    SystemField,
    Transform,
    overlapping_paths,
    parse_transforms,
)
from streams import (
    EntityModel,
    KafkaSettings,
    SaslSettings,
    TlsSettings,
)

_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _topic_prefix(value: str) -> str:
    if not _TOPIC_PREFIX.fullmatch(value):
        raise config_error("expected letters, digits, '.', '_' or '-' (it starts Kafka topic "
                           "names), got {value}", value=repr(value))
    return value


TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
_Section = Section
_secret = secret
_existing_file = existing_file


def _secret_from_env(data: Any, info: ValidationInfo, field: str) -> Any:
    """Put the secret that ``<field>_env`` names into ``field`` of the section's raw data.

    The secret itself may not be in the file. When the variable is not set, nothing is put:
    the validator of ``<field>_env`` reports it, at that key's line.
    """
    if not isinstance(data, dict):
        return data
    if field in data:
        raise config_error("secrets are never written in the file: set {field}_env to the "
                           "name of an environment variable holding it", field=field)
    name = data.get(f"{field}_env")
    if isinstance(name, str):
        try:
            return {**data, field: _secret(info, name)}
        except PydanticCustomError:
            pass
    return data


class SaslConfig(SaslSettings, _Section):
    """SASL credentials; the password comes from the environment variable ``password_env``."""

    password_env: EnvName = Field(examples=['KAFKA_PASSWORD'])
    """The environment variable that holds the SASL password."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_password(cls, data: Any, info: ValidationInfo) -> Any:
        return _secret_from_env(data, info, "password")

    @field_validator("password_env")
    @classmethod
    def _password_is_set(cls, name: str, info: ValidationInfo) -> str:
        _secret(info, name)
        return name


class SslConfig(TlsSettings, _Section):
    """TLS files; relative paths are relative to the configuration file."""

    key_password_env: EnvName | None = Field(None, examples=['KAFKA_KEY_PASSWORD'])
    """The environment variable that holds the key's password, if it has one."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_key_password(cls, data: Any, info: ValidationInfo) -> Any:
        return _secret_from_env(data, info, "key_password")

    @field_validator("cafile", "certfile", "keyfile")
    @classmethod
    def _file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(info, path)

    @field_validator("key_password_env")
    @classmethod
    def _key_password_is_set(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is not None:
            _secret(info, name)
        return name


class KafkaConfig(KafkaSettings, _Section):
    """The ``kafka:`` section: the client and topic settings of :mod:`streams` (one model,
    :class:`streams.KafkaSettings`), with the topic prefix, and secrets named by environment
    variables instead of written in the file."""

    topic_prefix: TopicPrefix = "syncline"
    """Every topic's name starts with this (``syncline.observations``, ...): two deployments on
    one cluster need two prefixes."""
    # validate_default: the check against security_protocol must also run when absent.
    sasl: SaslConfig | None = Field(default=None, validate_default=True, examples=[
        {"mechanism": "SCRAM-SHA-512", "username": "syncline", "password_env": "KAFKA_PASSWORD"}])
    """SASL credentials; required with the ``SASL_*`` protocols."""
    ssl: SslConfig | None = Field(default=None, validate_default=True,
        examples=[{'cafile': '/etc/syncline/kafka-ca.pem'}])
    """TLS files, with ``SSL`` and ``SASL_SSL``; relative paths are relative to the file."""

    @field_validator("bootstrap")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        addresses = [part.strip() for part in value.split(",")]
        for address in addresses:
            host, colon, port = address.rpartition(":")
            if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
                raise PydanticCustomError(
                    "bootstrap",
                    "expected host:port[,host:port...], got {value}",
                    {"value": repr(value)},
                )
        return ",".join(addresses)

    @field_validator("sasl")
    @classmethod
    def _sasl_matches_protocol(
        cls, sasl: SaslConfig | None, info: ValidationInfo
    ) -> SaslConfig | None:
        protocol = info.data.get("security_protocol")
        if protocol is None:  # security_protocol itself is wrong; reported there
            return sasl
        if protocol.startswith("SASL_") and sasl is None:
            raise PydanticCustomError(
                "sasl_missing",
                "required when security_protocol is {protocol} (mechanism, username, password_env)",
                {"protocol": protocol},
            )
        if not protocol.startswith("SASL_") and sasl is not None:
            raise PydanticCustomError(
                "sasl_unused",
                "only used with security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}",
                {"protocol": protocol},
            )
        return sasl

    @field_validator("ssl")
    @classmethod
    def _ssl_matches_protocol(cls, ssl: SslConfig | None, info: ValidationInfo) -> SslConfig | None:
        protocol = info.data.get("security_protocol")
        if protocol is not None and ssl is not None and protocol not in ("SSL", "SASL_SSL"):
            raise PydanticCustomError(
                "ssl_unused",
                "only used with security_protocol SSL or SASL_SSL, not {protocol}",
                {"protocol": protocol},
            )
        return ssl

    def settings(self) -> KafkaSettings:
        """The settings for :mod:`streams`: this section itself."""
        return self


def _systems(info: ValidationInfo) -> list[str] | None:
    """The system names of the file (in order), when the loader put them in the context."""
    context = info.context if isinstance(info.context, Mapping) else {}
    systems = context.get("systems")
    return list(systems) if isinstance(systems, list) else None


def _entity_error(message: str, **values: Any) -> PydanticCustomError:
    return PydanticCustomError("entity_config", message, values)


FieldTypeName = Literal["any", "string", "number", "integer", "boolean", "list", "object"]


class FieldConfig(_Section):
    """A canonical field: its type and, per system, where and how it lives there.

    Every key but ``type:`` and ``transform:`` names a system; its value is a dotted path
    (``crm: address.city``) or a :class:`daemon.mapping.SystemField` mapping
    (``helpdesk: {path: state, map: {open: new}}``). ``transform:`` here applies in every
    system, before the system's own.
    """

    # Extra keys are the systems, validated as SystemField; errors keep the file's path
    # (fields.email.crm.transform), which a nested "systems:" key would not.
    model_config = ConfigDict(frozen=True, extra="allow", use_attribute_docstrings=True)
    __pydantic_extra__: dict[str, SystemField] = Field(init=False)

    type: FieldTypeName = Field("any", examples=['string'])
    """The canonical value's type; values of another type are refused where they are read."""
    transform: tuple[Transform, ...] = Field((), examples=[['lower', 'sort']])
    """Normalisations applied in every system, before the system's own: ``lower``, ``upper``,
    ``strip``, ``collapse_whitespace``, ``email``, ``phone``, ``sort`` (lists)."""

    @model_validator(mode="before")
    @classmethod
    def _system_names(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data  # pydantic says "expected a mapping"
        systems = [k for k in data if k not in cls.model_fields]
        known = _systems(info)
        for system in systems:
            if known is not None and system not in known:
                raise _entity_error(
                    "{system} is not a system of this file (systems: {known}); a field maps "
                    "each system to its path there, e.g. crm: full_name, or sets type: or "
                    "transform:", system=repr(system), known=", ".join(known) or "none")
        if not systems:
            raise _entity_error("no system carries this field: map it, e.g. crm: full_name")
        return data

    @field_validator("transform", mode="before")
    @classmethod
    def _transforms(cls, value: Any) -> Any:
        return parse_transforms(value)

    @model_validator(mode="after")
    def _fits_the_type(self) -> Self:
        if self.type == "any":
            return self
        spec = FieldSpec("field", FieldType(self.type))
        for system, mapping in self.systems.items():
            canonical = (
                [_CANONICAL_OF_CAST[mapping.cast.canonical]] if mapping.cast else
                [""] if mapping.date else
                list((mapping.map or {}).values()))
            for value in canonical:
                if not spec.accepts(value):
                    raise _entity_error(
                        "{system}: gives {kind} values, but the field's type is {type}",
                        system=system, kind=_kind(value).removeprefix("a ").removeprefix(
                            "an "), type=self.type)
            transforms = [*self.transform, *mapping.transform]
            if "sort" in transforms and self.type != "list":
                raise _entity_error("{system}: transform sort needs a list field, not {type}",
                                    system=system, type=self.type)
            if set(transforms) - {"sort"} and self.type not in ("string", "list"):
                raise _entity_error("{system}: transform {names} needs a string field (or a "
                                    "list of strings), not {type}", system=system,
                                    names=", ".join(transforms), type=self.type)
        return self

    @property
    def systems(self) -> dict[str, SystemField]:
        """System -> where and how the field lives there."""
        return dict(self.model_extra or {})

    @property
    def names(self) -> dict[str, str]:
        """System -> the field's (dotted) path there."""
        return {system: mapping.path for system, mapping in self.systems.items()}

    def mapper(self, name: str, system: str) -> FieldMapper:
        """The field compiled for ``system`` (which must carry it)."""
        return FieldMapper.compile(name, self.type, self.systems[system], self.transform)


# A value of each canonical cast type, to check it against the field's type.
_CANONICAL_OF_CAST: dict[str, Any] = {"string": "", "integer": 0, "number": 0.5,
                                      "boolean": False}


class EntityConfig(_Section):
    """One entity (a kind of record): its fields, match keys and conflict policies."""

    match_on: list[str] = Field(default_factory=list, examples=[['email']])
    """Fields whose equal values make two systems' records the same record (looked up before a
    create)."""
    fields: dict[str, FieldConfig] = Field(min_length=1, examples=[
        {"email": {"crm": "email", "helpdesk": "email_address", "type": "string",
                   "transform": "email"}}])
    """The canonical fields, each mapped to its place in each system."""
    policy: dict[str, Any] = Field(default_factory=dict, examples=[
        {"default": "latest", "tags": "union", "name": "manual"}])
    """How a conflict is decided: ``default:`` and per field: ``latest``, ``manual``, ``union``
    (lists), ``prefer: <system>``, ..."""
    delete_policy: Literal["delete_wins", "update_wins", "manual"] = "manual"
    """A delete concurrent with an edit: ``delete_wins``, ``update_wins`` or ``manual``."""
    max_write_attempts: int = Field(5, ge=1)
    """Tries of one write to a system before it is given up (a dead letter)."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        for key in self.match_on:
            if key not in self.fields:
                raise _entity_error("match_on names {key}, which is not one of its fields "
                                    "({fields})", key=repr(key), fields=", ".join(self.fields))
        for key, raw in self.policy.items():
            if key != "default" and key not in self.fields:
                raise _entity_error("policy names {key}: expected default: or one of its "
                                    "fields ({fields})", key=repr(key),
                                    fields=", ".join(self.fields))
            try:
                parse_policy(raw)
            except SpecError as exc:
                raise _entity_error("policy.{key}: {problem}", key=key,
                                    problem=str(exc)) from None
        try:
            self.spec("entity", _systems(info) or self.systems_in_order([]))
        except SpecError as exc:
            raise _entity_error("{problem}", problem=str(exc)) from None
        for system in self.systems_in_order([]):
            clash = overlapping_paths(self._mappers(system))
            if clash:
                raise _entity_error("{system}: {clash}", system=system, clash=clash)
        return self

    def _mappers(self, system: str) -> list[FieldMapper]:
        return [f.mapper(name, system) for name, f in self.fields.items() if system in f.names]

    def mapping(self, name: str, system: str) -> EntityMapping:
        """How the entity ``name`` reads from and writes to ``system``; build it once."""
        return EntityMapping(name, system, self._mappers(system))

    def systems_in_order(self, order: Sequence[str]) -> list[str]:
        """The systems that carry at least one field, in the file's order of systems."""
        used = {s for f in self.fields.values() for s in f.names}
        ordered = [s for s in order if s in used]
        return ordered + sorted(used - set(ordered))

    def spec(self, name: str, system_order: Sequence[str]) -> EntitySpec:
        """The fold's spec of this entity."""
        systems = self.systems_in_order(system_order)
        default = self.policy.get("default", "latest")
        fields = [FieldSpec(field_name, FieldType(f.type), frozenset(f.names),
                            parse_policy(self.policy[field_name])
                            if field_name in self.policy else None,
                            read_only=frozenset(s for s in f.names
                                                if not f.mapper(field_name, s).writable))
                  for field_name, f in self.fields.items()]
        return EntitySpec.build(name, systems, fields, default_policy=parse_policy(default),
                                delete_policy=DeletePolicy(self.delete_policy),
                                max_write_attempts=self.max_write_attempts)


class ReviewConfig(SecretSection):
    """The review page on the worker's web server, protected by a token."""

    SECRET_FROM = "token_env"
    token_env: EnvName = Field(examples=['SYNCLINE_REVIEW_TOKEN'])
    """The environment variable that holds the review page's token."""

    @property
    def token(self) -> SecretStr:
        """The token a reviewer presents (``Authorization: Bearer`` or ``?token=``)."""
        return self.secret_value


class LoggingConfig(_Section):
    """How the worker logs (see :mod:`daemon.logs`); secrets are always redacted."""

    format: Literal["auto", "json", "console"] = Field("auto", examples=["json"])
    """``json`` (one object per line), ``console`` (text for a person) or ``auto`` (text on
    a terminal, JSON elsewhere); ``SYNCLINE_LOG_FORMAT`` overrides it."""
    level: Literal["debug", "info", "warning", "error"] = Field("info", examples=["warning"])
    """The lowest level logged (``warning`` drops the per-change lines of a bulk load)."""
    redact_fields: list[str] = Field(default_factory=list, examples=[["email", "phone"]])
    """Keys whose values never appear in a log line, at any depth (canonical field names
    such as ``email``, or a system's own)."""


class WorkerConfig(_Section):
    """The worker process."""

    shutdown_timeout_seconds: float = Field(30.0, gt=0, examples=[30])
    """After SIGTERM, how long the worker may take to stop reading, finish the writes in
    flight and commit; past it, it exits with code 1 and says so."""


class Config(_Section):
    """The whole file.

    The order of ``systems`` is the tie-break order of the ``latest`` policy. A system that
    describes entities gets a lane for each; it must then describe every entity that maps
    fields to it. A system that describes none has no lane (its observations come from
    elsewhere).
    """

    kafka: KafkaConfig = Field(examples=[{'bootstrap': '127.0.0.1:19092'}])
    """The Kafka cluster and syncline's topics there."""
    systems: dict[str, SystemConfig] = Field(default_factory=dict, examples=[
        {"crm": {"base_url": "https://crm.example.com",
                 "entities": {"contact": {"path": "/contacts"}}}}])
    """The systems to keep in sync, by name; their order breaks ties of the ``latest`` policy."""
    entities: dict[str, EntityConfig] = Field(default_factory=dict,
        examples=[{'contact': {'fields': {'email': {'crm': 'email'}}}}])
    """The entities (kinds of record) to keep in sync, by name."""
    review: ReviewConfig | None = Field(None, examples=[{'token_env': 'SYNCLINE_REVIEW_TOKEN'}])
    """The review page on the worker's web server (none: no review page)."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig,
        examples=[{"format": "json", "redact_fields": ["email", "phone"]}])
    """How the worker logs: the format and the fields whose values are never logged."""
    worker: WorkerConfig = Field(default_factory=WorkerConfig,
        examples=[{"shutdown_timeout_seconds": 30}])
    """The worker process: how long a stop may take."""

    def cross_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """What no single section can see: systems' entities against the entities."""
        problems: list[tuple[tuple[str, ...], str]] = []
        for name, system in self.systems.items():
            for entity in system.entities:
                if entity not in self.entities:
                    problems.append((("systems", name, "entities", entity),
                                     f"{entity!r} is not one of the entities: "
                                     f"({', '.join(self.entities) or 'none'})"))
            if not system.entities:
                continue
            for entity_name, entity_config in self.entities.items():
                mapped = any(name in f.names for f in entity_config.fields.values())
                if mapped and entity_name not in system.entities:
                    problems.append((("systems", name, "entities"),
                                     f"entities.{entity_name} maps fields to {name}, but "
                                     f"{name} does not describe {entity_name}: add "
                                     f"{entity_name}: (its path, records_at, since, ...)"))
        for name, system in self.systems.items():
            for entity_name, endpoint in system.entities.items():
                if entity_name not in self.entities:
                    continue
                for field_name, field_config in self.entities[entity_name].fields.items():
                    mapping = field_config.systems.get(name)
                    if mapping is None or mapping.direction == "read":
                        continue
                    written = mapping.write_path or mapping.path
                    for constant in endpoint.create.constants:
                        if _nested(written, constant):
                            problems.append((
                                ("systems", name, "entities", entity_name, "create",
                                 "constants", constant),
                                f"the field {field_name} writes {written} in {name}: a "
                                "constant there would override it on every create (use "
                                "defaults: for a value used only where the field is empty)"))
        for name, system in self.systems.items():
            for entity_name, endpoint in system.entities.items():
                scratch = endpoint.check.scratch
                if scratch is None or entity_name not in self.entities:
                    continue
                fields = self.entities[entity_name].fields
                for key in scratch:
                    mapping = fields[key].systems.get(name) if key in fields else None
                    if mapping is None or mapping.direction == "read":
                        carried = [f for f, c in fields.items() if name in c.systems
                                   and c.systems[name].direction != "read"]
                        problems.append((
                            ("systems", name, "entities", entity_name, "check", "scratch", key),
                            f"{key!r} is not a field of {entity_name} written to {name} "
                            f"(those are: {', '.join(carried) or 'none'})"))
        for entity_name, entity_config in self.entities.items():
            for field_name, field_config in entity_config.fields.items():
                for system_name, mapping in field_config.systems.items():
                    if mapping.ref is None:
                        continue
                    loc = ("entities", entity_name, "fields", field_name, system_name, "ref")
                    if mapping.ref not in self.entities:
                        problems.append((loc, f"{mapping.ref!r} is not one of the entities: "
                                         f"({', '.join(self.entities)})"))
                    elif field_config.type not in ("any", "string"):
                        problems.append((loc, "a reference holds a canonical id: the field's "
                                         f"type must be string, not {field_config.type}"))
                    elif (system_name in self.systems and self.systems[system_name].entities
                          and mapping.ref not in self.systems[system_name].entities):
                        problems.append((loc, f"{system_name} does not describe "
                                         f"{mapping.ref} (systems.{system_name}.entities), so "
                                         "its ids cannot be looked up"))
        return problems

    def catalog(self) -> dict[str, EntityModel]:
        """What the merge worker needs to know of every entity."""
        order = list(self.systems)
        return {name: EntityModel(entity.spec(name, order), tuple(entity.match_on))
                for name, entity in self.entities.items()}


def _nested(a: str, b: str) -> bool:
    """Whether the dotted paths ``a`` and ``b`` are the same or one holds the other."""
    pa, pb = a.split("."), b.split(".")
    return pa[:len(pb)] == pb or pb[:len(pa)] == pa


def load_config(path: str | Path, env: Mapping[str, str]) -> Config:
    """Read, parse and validate the configuration file.

    Args:
        path: the YAML file.
        env: the environment, for the variables the file names for secrets.

    Raises:
        ConfigError: one line per problem, naming the file, the line, the path inside the
            file and what was expected.
    """
    file = str(path)
    text = _read(file)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(file, [_yaml_problem(file, exc)]) from None
    if data is None:
        raise ConfigError(file, [f"{file}: the file is empty; expected at least a kafka: section"])
    if not isinstance(data, dict):
        raise ConfigError(
            file,
            [
                f"{file}: expected a mapping at the top level (kafka:, systems:, entities:), "
                f"got {_kind(data)}"
            ],
        )
    systems = data.get("systems")
    context = {"env": env, "base_dir": Path(file).parent,
               "systems": list(systems) if isinstance(systems, dict) else []}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        problems = [_problem(file, root, error) for error in exc.errors()]
        raise ConfigError(file, problems) from None
    cross = config.cross_problems()
    if cross:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        lines = []
        for loc, message in cross:
            line = _line(root, loc)
            lines.append(f"{file}:{line}: {_dotted(loc)}: {message}" if line
                         else f"{file}: {_dotted(loc)}: {message}")
        raise ConfigError(file, lines)
    return config


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory, not a configuration file"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except OSError as exc:
        problem = f"cannot read it: {exc.strerror or exc}"
    raise ConfigError(file, [f"{file}: {problem}"])


def _yaml_problem(file: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"{where}: not valid YAML: {detail}"


def _problem(file: str, root: yaml.Node | None, error: ErrorDetails) -> str:
    loc = error["loc"]
    path = _dotted(loc)
    line = _line(root, loc)
    where = f"{file}:{line}" if line else file
    return f"{where}: {path or '(top level)'}: {_explain(error)}"


def _dotted(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _line(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The line of the deepest node of ``loc`` that exists in the file (1-based)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _explain(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value), got {_kind(error['input'])}"
    if kind in _OURS:
        return error["msg"]  # raised by the validators above; already says what is expected
    message = error["msg"]
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    else:
        message = message[:1].lower() + message[1:]
    return f"{message}, got {_shown(error['input'])}"


# Error types raised by the validators in this module (PydanticCustomError).
_OURS = frozenset(
    {
        CONFIG_ERROR,
        "env_missing",
        "env_name",
        "file_missing",
        "topic_prefix",
        "bootstrap",
        "sasl_missing",
        "sasl_unused",
        "ssl_unused",
        "topic_settings",
        "entity_config",
        MAPPING_ERROR,
    }
)


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_kind(value)})" if not isinstance(value, str) else text


def _kind(value: Any) -> str:
    for kind, name in _KINDS:
        if isinstance(value, kind):
            return name
    return "nothing (null)" if value is None else type(value).__name__


# bool before int: True is an int to Python, not to a person writing YAML.
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a mapping"),
)


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    """The keys the schema accepts at ``loc``, for "unknown key" messages."""
    model: Any = Config
    for part in loc:
        if get_origin(model) is dict:  # a key of a mapping (entities.contact)
            model = get_args(model)[1]
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is not None:
            dict_of = get_origin(field.annotation) is dict
            model = field.annotation if dict_of else _model_in(field.annotation)
        elif model is FieldConfig:  # every other key of a field is a system
            model = SystemField
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        # A secret's field is filled from its ``_env`` key, never written in the file.
        return [name for name in model.model_fields if f"{name}_env" not in model.model_fields]
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None

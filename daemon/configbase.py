"""What every section of the configuration file shares: strictness, secrets, custom errors.

Sections are frozen pydantic models that forbid unknown keys. A secret is never in the file:
the file names an environment variable (``token_env: CRM_TOKEN``) and the value is taken from
the environment mapping in the validation context (``context={"env": ...}``), or from the
file that ``CRM_TOKEN_FILE`` names, and held as ``SecretStr``. Validators raise
:func:`config_error`, whose message the loader shows verbatim after ``FILE:LINE: PATH:``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

CONFIG_ERROR = "syncline_config"
"""The error type of :func:`config_error`: the loader shows its message as it is."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Section(BaseModel):
    """A part of the file: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class SecretSection(Section):
    """A section with one secret, named by the field ``SECRET_FROM`` (``token_env``).

    The secret is resolved when the file is loaded (an unset variable is an error there)
    and kept as ``SecretStr`` in :attr:`secret_value`.
    """

    SECRET_FROM: ClassVar[str]
    _secret_value: SecretStr = PrivateAttr()

    @model_validator(mode="after")
    def _resolve_secret(self, info: ValidationInfo) -> Self:
        self._secret_value = secret(info, getattr(self, self.SECRET_FROM))
        return self

    @property
    def secret_value(self) -> SecretStr:
        """The secret, as read from the environment (or its file) at load time."""
        return self._secret_value


def config_error(message: str, **values: Any) -> PydanticCustomError:
    """A validation error whose message is shown to the user as it is."""
    return PydanticCustomError(CONFIG_ERROR, message, values)


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise config_error("expected the name of an environment variable (letters, digits, _), "
                           "got {value}", value=repr(value))
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
"""The name of an environment variable that holds a secret."""


def context_of(info: ValidationInfo) -> Mapping[str, Any]:
    """The loader's validation context (``env``, ``base_dir``, ``systems``)."""
    return info.context if isinstance(info.context, Mapping) else {}


def environment(info: ValidationInfo) -> Mapping[str, str]:
    """The environment the loader was given."""
    env = context_of(info).get("env", {})
    return env if isinstance(env, Mapping) else {}


def secret(info: ValidationInfo, name: str) -> SecretStr:
    """The secret held by environment variable ``name``, or by the file ``$<name>_FILE`` names.

    The ``_FILE`` form is for secrets mounted as files (Docker and Kubernetes secrets); a
    trailing newline in the file is not part of the secret.
    """
    env = environment(info)
    value = env.get(name)
    if value is not None:
        return SecretStr(value)
    file = env.get(f"{name}_FILE")
    if file is None:
        raise config_error("environment variable {name} is not set (it should hold the "
                           "secret, or {name}_FILE the path of a file holding it)", name=name)
    try:
        return SecretStr(Path(file).read_text(encoding="utf-8").rstrip("\r\n"))
    except (OSError, UnicodeDecodeError) as exc:
        raise config_error("{name}_FILE names {file}, which cannot be read ({why})", name=name,
                           file=file, why=getattr(exc, "strerror", None) or str(exc)) from None


def existing_file(info: ValidationInfo, path: Path | None) -> Path | None:
    """Resolve ``path`` against the config file's directory and require that it exists."""
    if path is None:
        return None
    base = context_of(info).get("base_dir")
    full = path if path.is_absolute() or not isinstance(base, Path) else base / path
    if not full.is_file():
        raise config_error("no such file: {path}", path=str(full))
    return full

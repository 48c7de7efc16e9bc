"""How the worker's log lines look, and what they never show.

structlog renders every line: one JSON object per line when stderr is not a terminal (a
container's log, a file, a pipe), coloured aligned text when it is (``logging.format`` or
``SYNCLINE_LOG_FORMAT`` choose either). The code logs through the standard library
(``logging.getLogger(__name__)``), and so do aiokafka, httpx and aiohttp: structlog's
:class:`~structlog.stdlib.ProcessorFormatter` formats all of it on one handler, and the
``extra=`` of a call (``correlation_id``, ``system``, ``external_id``, ...) become keys of the
line.

Before a line is rendered, :class:`Redactor` replaces every secret of the configuration
(tokens, passwords, webhook secrets: whatever was read from a secret's variable or file)
wherever it occurs in the line, and the value of every key named in
``logging.redact_fields`` (personal data, such as ``email``) at any depth.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, Literal, TextIO
from urllib.parse import quote, quote_plus

import structlog
from pydantic import BaseModel, SecretStr

LogFormat = Literal["json", "console"]

REDACTED: Final = "[redacted]"
"""What a secret or a personal value is replaced by."""


def choose_format(setting: str | None, stream: TextIO) -> LogFormat:
    """``json`` or ``console``: the one asked for, else text on a terminal and JSON elsewhere."""
    if setting == "json":
        return "json"
    if setting == "console":
        return "console"
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or odd stream
        return "json"


def secrets_of(config: BaseModel) -> list[str]:
    """Every secret held by ``config``: its ``SecretStr`` fields and private attributes."""
    found: list[str] = []
    seen: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
        elif isinstance(value, BaseModel):
            if id(value) in seen:
                return
            seen.add(id(value))
            for name in type(value).model_fields:
                walk(getattr(value, name, None))
            walk(list((value.__pydantic_private__ or {}).values()))
            walk(list((value.__pydantic_extra__ or {}).values()))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item)

    walk(config)
    return sorted(set(found), key=len, reverse=True)


class Redactor:
    """A structlog processor: secrets and personal fields out of a line before it is shown.

    Args:
        secrets: values replaced wherever they occur in a string of the line (the message,
            an exception's text, a URL, any key's value), as they are or URL-encoded.
        fields: keys whose value is replaced, at any depth (``fields.email`` too).
    """

    def __init__(self, secrets: Iterable[str] = (), fields: Iterable[str] = ()) -> None:
        forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote_plus(s))}
        self.secrets = sorted(forms, key=len, reverse=True)
        self.fields = frozenset(fields)

    def __call__(self, logger: Any, method: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = REDACTED if key in self.fields else self._clean(value)
        return event_dict

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, Mapping):
            return {k: REDACTED if k in self.fields else self._clean(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._clean(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self._clean(str(value))  # whatever it is, as the renderer would show it


def configure(fmt: LogFormat, *, level: int | str = logging.INFO,
              redactor: Redactor | None = None, stream: TextIO | None = None) -> None:
    """Send every log record of the process, formatted by structlog, to ``stream``.

    Replaces the root logger's handlers; also routes ``warnings`` and uncaught exceptions
    through logging, so that nothing else writes to the stream.
    """
    stream = stream if stream is not None else sys.stderr
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        timestamper,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_colours(stream))
    processors: list[Any] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        # The traceback becomes text before the redactor sees the line: a secret in an
        # exception's message is caught too.
        structlog.processors.format_exc_info,
        structlog.processors.StackInfoRenderer(),
    ]
    if redactor is not None:
        processors.append(redactor)
    processors.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain,
                                                    processors=processors)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*pre_chain[:-1], timestamper,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        logging.getLogger("syncline").critical("uncaught exception",
                                               exc_info=(kind, exc, tb))

    sys.excepthook = excepthook


def _colours(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

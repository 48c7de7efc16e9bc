"""What every ``syncline`` command shares: the environment, read once, and how a user's
mistake ends a command — one line on stderr and exit code 2, never a traceback.

:mod:`daemon.cli` builds the command group and :mod:`daemon.review.cli` adds the review
commands to it; both take these from here, so neither imports the other back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from daemon.config import Config, load_config
from daemon.errors import ConfigError
from daemon.shipped import MissingFile, kafka_script
from streams import KafkaSettings, KafkaUnavailable, StreamsError

USAGE_ERROR = 2
"""Exit code for a mistake the user can fix: bad config, unreachable broker."""

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")

T = TypeVar("T")


@dataclass(frozen=True)
class CliContext:
    """What every command gets: the environment, read once at start-up."""

    env: Mapping[str, str] = field(default_factory=dict)


def kafka_hint(bootstrap: str) -> str:
    """What to do when the broker at ``bootstrap`` does not answer."""
    hosts = {address.rpartition(":")[0] for address in bootstrap.split(",")}
    if hosts & set(_LOCAL_HOSTS):
        try:
            return f"is the broker running? To start the local one: bash {kafka_script()} up"
        except MissingFile:
            return "is the broker running?"
    return "check kafka.bootstrap and that the cluster is up and reachable from here"


def fail(message: str) -> NoReturn:
    """End the command: ``message`` on stderr, exit code :data:`USAGE_ERROR`."""
    click.echo(message, err=True)
    raise SystemExit(USAGE_ERROR)


def quiet_kafka_client() -> None:
    """Keep the Kafka and HTTP clients' own logging off the terminal."""
    # aiokafka logs every refused connection at ERROR; with no logging configured Python
    # would print those to stderr next to the one line the command reports itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # httpx logs every request at INFO; daemon.http logs what matters (failures) itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def load_or_fail(obj: CliContext | None, config_path: Path) -> Config:
    """The configuration file, or :func:`fail` naming what is wrong in it."""
    env = obj.env if obj is not None else {}
    try:
        return load_config(config_path, env)
    except ConfigError as exc:
        fail(str(exc))


def run_kafka(settings: KafkaSettings, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; an unreachable or failing broker ends the command with one line."""
    quiet_kafka_client()
    try:
        return asyncio.run(work)
    except KafkaUnavailable as exc:
        fail(f"syncline: {exc}; {kafka_hint(settings.bootstrap)}")
    except StreamsError as exc:
        fail(f"syncline: Kafka at {settings.bootstrap}: {exc}")

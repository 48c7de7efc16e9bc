"""The ``syncline`` command line.

The environment is read once, in :func:`main`, and handed to commands as
:class:`CliContext`; nothing else reads ``os.environ``. A user's mistake (a bad config
file, an unreachable broker) is one message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click
import orjson

from daemon import __version__
from daemon.config import load_config
from daemon.errors import ConfigError
from streams.errors import KafkaUnavailable, StreamsError
from streams.events import json_schemas
from streams.kafka import probe

USAGE_ERROR = 2
"""Exit code for a mistake the user can fix: bad config, unreachable broker."""

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _kafka_hint(bootstrap: str) -> str:
    hosts = {address.rpartition(":")[0] for address in bootstrap.split(",")}
    if hosts & set(_LOCAL_HOSTS):
        return "is the broker running? To start the local one: deploy/kafka/kafka.sh up"
    return "check kafka.bootstrap and that the cluster is up and reachable from here"


@dataclass(frozen=True)
class CliContext:
    """What every command gets: the environment, read once at start-up."""

    env: Mapping[str, str] = field(default_factory=dict)


def _fail(message: str) -> None:
    click.echo(message, err=True)
    raise SystemExit(USAGE_ERROR)


def _quiet_kafka_client() -> None:
    # aiokafka logs every refused connection at ERROR; with no logging configured Python
    # would print those to stderr next to the one line the command reports itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@click.group()
@click.version_option(__version__, prog_name="syncline")
def cli() -> None:
    """syncline: event-sourced two-way sync between the systems a company runs."""


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The YAML configuration file.",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for Kafka to answer.",
)
@click.pass_obj
def check(obj: CliContext | None, config_path: Path, timeout: float) -> None:
    """Validate the configuration file and reach Kafka."""
    env = obj.env if obj is not None else {}
    try:
        config = load_config(config_path, env)
    except ConfigError as exc:
        _fail(str(exc))
        return
    click.echo(
        f"config ok: {config_path} ({len(config.systems)} systems, "
        f"{len(config.entities)} entities, topic prefix {config.kafka.topic_prefix!r})"
    )
    settings = config.kafka.settings()
    _quiet_kafka_client()
    try:
        cluster = asyncio.run(probe(settings, timeout))
    except KafkaUnavailable as exc:
        _fail(f"syncline: {exc}; {_kafka_hint(settings.bootstrap)}")
        return
    except StreamsError as exc:
        _fail(f"syncline: Kafka at {settings.bootstrap}: {exc}")
        return
    brokers = len(cluster.brokers)
    click.echo(
        f"kafka ok: {settings.bootstrap} (cluster {cluster.cluster_id}, "
        f"{brokers} broker{'s' if brokers != 1 else ''})"
    )


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/schemas"), show_default=True,
              help="Directory to write one <schema name>.v<version>.json file per event into.")
def schemas(out_dir: Path) -> None:
    """Write the JSON Schema of every event on syncline's topics (for other teams)."""
    written = write_schemas(out_dir)
    for path in written:
        click.echo(str(path))


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every event's JSON Schema into ``out_dir``; the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for schema, body in sorted(json_schemas().items()):
        name, _, version = schema.partition("/")
        path = out_dir / f"{name}.v{version}.json"
        path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
                         + b"\n")
        written.append(path)
    return written


def main() -> None:
    """Entry point of the ``syncline`` console script."""
    cli(prog_name="syncline", obj=CliContext(env=dict(os.environ)))

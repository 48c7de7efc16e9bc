"""The ``syncline`` command line.

The environment is read once, in :func:`main`, and handed to commands as
:class:`CliContext`; nothing else reads ``os.environ``. A user's mistake (a bad config
file, an unreachable broker) is one message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

import conflict
from daemon import __version__
from daemon.check import check_systems, check_webhooks, sample_webhook
from daemon.clibase import (
    CliContext,
    fail,
    kafka_hint,
    load_or_fail,
    quiet_kafka_client,
    run_kafka,
)
from daemon.config import Config
from daemon.configdoc import config_reference, config_schema
from daemon.errors import DaemonError
from daemon.logs import Redactor, choose_format, secrets_of
from daemon.logs import configure as configure_logs
from daemon.review.cli import register as register_review
from daemon.worker import ROLES, Worker
from streams import (
    Admin,
    KafkaUnavailable,
    StreamsError,
    Topics,
    TopicsReport,
    compare_topics,
    json_schemas,
    probe,
    running_lanes,
    tune_gc,
)
from streams import (
    dead_letters as dlq_letters,
)
from streams import (
    redrive_dead_letters as dlq_redrive_letters,
)
from streams import (
    replay as replay_log,
)

__all__ = ["CliContext", "cli", "main"]


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
@click.option("--write-probe", is_flag=True,
              help="Also write: create and delete a scratch record where check.scratch "
              "allows it, else write one record's own values back; name every field that "
              "does not round-trip.")
@click.option("--skip-kafka", is_flag=True,
              help="Check the file and the systems' APIs only, not Kafka and its topics.")
@click.option("--webhook-sample", "webhook_sample", nargs=2, multiple=True,
              type=(str, click.Path(path_type=Path)), metavar="SYSTEM[/ENTITY] FILE",
              help="Read the body in FILE as the receiver would read it sent to "
              "/webhooks/SYSTEM[/ENTITY]: print its event, entity and ids, or why it would "
              "be ignored or refused (repeatable).")
@click.pass_obj
def check(obj: CliContext | None, config_path: Path, timeout: float, write_probe: bool,
          skip_kafka: bool, webhook_sample: tuple[tuple[str, Path], ...]) -> None:
    """Prove the configuration can sync before it runs.

    Validates the file, reaches Kafka and compares its topics, then per system and entity
    makes the requests the lanes will make, and prints each (method and URL, query
    included): the first page of the listing; the listing with the since filter (it must
    return every record of that page, and nothing from tomorrow on); one record by its id.
    Every mapped path must be present and readable in the records read; unreadable records
    are counted as such. With --write-probe it also writes.

    Webhooks are checked too: the secret resolved, the scheme, every configured event about
    an entity, the JMESPath of id_at and event_at; --webhook-sample runs a body through the
    receiver's own parsing.

    Exit code 0 when all is well; 1 when an API answered but the config would not sync, or
    a webhook would be ignored or refused (each problem named on stderr); 2 for a bad file,
    an unreadable sample, an unreachable broker or API.
    """
    config = load_or_fail(obj, config_path)
    samples = []
    for target, path in webhook_sample:
        try:
            samples.append((target, path.read_bytes()))
        except OSError as exc:
            fail(f"syncline: --webhook-sample {target} {path}: cannot read it "
                 f"({exc.strerror or exc})")
    click.echo(
        f"config ok: {config_path} ({len(config.systems)} systems, "
        f"{len(config.entities)} entities, topic prefix {config.kafka.topic_prefix!r})"
    )
    topics_ok = True
    if not skip_kafka:
        settings = config.kafka.settings()
        quiet_kafka_client()
        try:
            cluster = asyncio.run(probe(settings, timeout))
        except KafkaUnavailable as exc:
            fail(f"syncline: {exc}; {kafka_hint(settings.bootstrap)}")
        except StreamsError as exc:
            fail(f"syncline: Kafka at {settings.bootstrap}: {exc}")
        brokers = len(cluster.brokers)
        click.echo(
            f"kafka ok: {settings.bootstrap} (cluster {cluster.cluster_id}, "
            f"{brokers} broker{'s' if brokers != 1 else ''})"
        )
        topics_ok = _check_topics(config)
        if write_probe:
            _refuse_probe_while_running(config)
    elif write_probe:
        click.echo("write probe: not checked whether `syncline run` runs these systems' lanes "
                   "(--skip-kafka); a running worker could copy a scratch record")
    quiet_kafka_client()
    reports = asyncio.run(check_systems(config, write_probe=write_probe))
    hooks = [*check_webhooks(config),
             *(sample_webhook(config, target, body) for target, body in samples)]
    for hook in hooks:
        click.echo(f"{hook.entity} {'ok' if hook.ok else 'PROBLEMS'}: {hook.system}")
        for note in hook.notes:
            click.echo(f"    {note}")
        for problem in hook.problems:
            click.echo(f"webhooks FAILED: {hook.system} {hook.entity}: {problem}", err=True)
    unreachable = sum(1 for r in reports if r.unreachable)
    problems = (sum(len(r.problems) for r in reports if not r.unreachable)
                + sum(len(hook.problems) for hook in hooks))
    for report in reports:
        where = f"{report.system} {report.entity}"
        state = "ok" if report.ok else "UNREACHABLE" if report.unreachable else "PROBLEMS"
        click.echo(f"api {state}: {where}")
        for request in report.requests:
            click.echo(f"    {request}")
        for note in report.notes:
            click.echo(f"    {note}")
        for problem in report.problems:
            click.echo(f"api FAILED: {where}: {problem}", err=True)
    if not topics_ok:
        fail("syncline: the topics do not match kafka.topics (above): change the settings "
              "to match the cluster, or the cluster to match the settings")
    if unreachable:
        fail(f"syncline: {unreachable} of the systems' APIs could not be reached (above)")
    if problems:
        click.echo(f"syncline: this config would not sync: {problems} problem"
                   f"{'s' if problems != 1 else ''} (above)", err=True)
        raise SystemExit(1)


def _refuse_probe_while_running(config: Config) -> None:
    """Exit 2 when a worker runs the lanes of a system the write probe would write to: it
    could copy the scratch record to the other systems before the probe deletes it."""
    systems = [name for name, system in config.systems.items() if system.entities]
    running = run_kafka(config.kafka, running_lanes(
        config.kafka.settings(), Topics(config.kafka.topic_prefix), systems))
    if running:
        where = "; ".join(f"{system} (consumer group {config.kafka.topic_prefix}.lanes."
                          f"{system}: {', '.join(members)})"
                          for system, members in sorted(running.items()))
        fail(f"syncline: --write-probe refused: `syncline run` is running the lanes of {where}; "
             "it could copy the probe's record to the other systems. Stop its lanes first, "
             "or check without --write-probe")
    click.echo(f"write probe: no worker runs the lanes of {', '.join(systems) or 'any system'}")


def _check_topics(config: Config) -> bool:
    """Compare the deployment's topics with ``kafka.topics``; whether they match."""

    async def compare() -> TopicsReport:
        async with Admin(config.kafka) as admin:
            return await compare_topics(admin, Topics(config.kafka.topic_prefix),
                                        config.kafka.topics)

    report = run_kafka(config.kafka, compare())
    for problem in report.problems:
        click.echo(f"topics FAILED: {problem}", err=True)
    wanted = config.kafka.topics
    shape = (f"{wanted.partitions} partitions, replication factor "
             f"{wanted.replication_factor}")
    if report.matching:
        click.echo(f"topics ok: {len(report.matching)} as configured ({shape})")
    if report.missing:
        click.echo(f"topics: {len(report.missing)} to be created by `syncline run` ({shape})")
    return not report.problems


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


def _listen_address(value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not (colon and host and port.isdigit() and 0 <= int(port) < 65536):
        raise click.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {value!r}")
    return host, int(port)


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML configuration file.")
@click.option("--role", "roles", type=click.Choice(["all", "route", "merge", "lanes"]),
              multiple=True, default=("all",), show_default=True,
              help="Which parts this process runs (repeatable; scale out by role).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the tables in RocksDB under this directory instead of in memory.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True,
              help="HOST:PORT of the web server (health, metrics, webhooks).")
@click.pass_obj
def run(obj: CliContext | None, config_path: Path, roles: tuple[str, ...],
        state_dir: Path | None, listen: str) -> None:
    """Run the worker until SIGTERM or SIGINT.

    The lanes read every system and write the merged records back; the merge stages route
    the systems' observations to canonical records and fold them, exactly once, emitting
    record events, write intents and conflicts. The web server serves /health, /ready,
    /metrics and the webhook receivers.
    """
    config = load_or_fail(obj, config_path)
    try:
        host, port = _listen_address(listen)
    except click.BadParameter as exc:
        fail(f"syncline run: --listen: {exc.message}")
    settings = config.kafka.settings()
    env = obj.env if obj is not None else {}
    log_format = env.get("SYNCLINE_LOG_FORMAT") or config.logging.format
    if log_format not in ("auto", "json", "console"):
        fail(f"syncline run: SYNCLINE_LOG_FORMAT: expected json, console or auto, "
             f"got {log_format!r}")
    configure_logs(choose_format(log_format, sys.stderr), level=config.logging.level.upper(),
                   redactor=Redactor(secrets_of(config), config.logging.redact_fields))
    quiet_kafka_client()
    log = logging.getLogger("syncline")
    chosen = ROLES if "all" in roles else tuple(r for r in ROLES if r in roles)
    worker = Worker(config, roles=chosen, state_dir=state_dir, host=host, port=port)
    if "merge" in chosen:
        log.info("the fold: %s", "compiled by mypyc" if conflict.compiled()
                 else "interpreted (`make compile` builds the faster compiled fold)")
    deadline = config.worker.shutdown_timeout_seconds

    async def serve() -> bool:
        tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_until_stopped(worker.run(stop), stop, deadline, log)

    try:
        stopped_in_time = run_kafka(settings, serve())
    except DaemonError as exc:
        fail(f"syncline: {exc}")
    if not stopped_in_time:
        # Said in the log (one more line on stderr in its format); the work in flight is
        # redone by the next start (the journal has not moved past it).
        logging.shutdown()
        os._exit(1)  # the tasks that did not stop in time would be awaited again otherwise


async def run_until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event,
                            deadline: float, log: logging.Logger) -> bool:
    """Run ``work`` until it ends; once ``stop`` is set, give it ``deadline`` seconds to end
    on its own (stop reading, finish and commit what is in flight). False if it did not."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        log.info("stopping: finishing the writes in flight and committing (at most %g s)",
                 deadline)
        began = time.monotonic()
        await asyncio.wait({task}, timeout=deadline)
        if not task.done():
            log.error("did not stop within worker.shutdown_timeout_seconds (%g s): exiting "
                      "with code 1, the work in flight unfinished (the next start carries it "
                      "out)", deadline)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
            return False
        log.info("stopped in %.1f s", time.monotonic() - began)
    task.result()
    return True


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML configuration file.")
@click.pass_obj
def replay(obj: CliContext | None, config_path: Path) -> None:
    """Rebuild the records table from the log and compare it with the live one.

    Exit code 0 when they are equal, 1 when any record differs. The rebuild stops at the
    offsets the live table reflects, so it can run while the merge stage works.
    """
    config = load_or_fail(obj, config_path)
    settings = config.kafka.settings()
    result = run_kafka(settings, replay_log(settings, Topics(config.kafka.topic_prefix),
                                             config.catalog()))
    differences = result.differences
    click.echo(result.summary())
    for cid in differences[:20]:
        click.echo(f"  differs: {cid}")
    if differences:
        raise SystemExit(1)


@cli.group()
def dlq() -> None:
    """The dead-letter topic: inputs that could not be processed, with the reason."""


@dlq.command("list")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML configuration file.")
@click.option("--stage", help="Only letters of this stage (route, merge, lane:crm, ...).")
@click.pass_obj
def dlq_list(obj: CliContext | None, config_path: Path, stage: str | None) -> None:
    """List the dead letters: id, stage, where the input came from, and why it failed."""
    config = load_or_fail(obj, config_path)
    settings = config.kafka.settings()
    found = run_kafka(settings, dlq_letters(settings, Topics(config.kafka.topic_prefix),
                                             stage))
    for item in found:
        letter = item.letter
        click.echo(f"{item.id}  {letter.stage}  {letter.topic}[{letter.partition}]@"
                   f"{letter.offset}  {letter.error}: {letter.reason}")
    click.echo(f"{len(found)} dead letter{'s' if len(found) != 1 else ''}")


@dlq.command("redrive")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML configuration file.")
@click.option("--id", "ids", multiple=True, help="A letter id from `dlq list` (repeatable).")
@click.option("--stage", help="Every letter of this stage.")
@click.option("--all", "everything", is_flag=True, help="Every letter.")
@click.pass_obj
def dlq_redrive(obj: CliContext | None, config_path: Path, ids: tuple[str, ...],
                stage: str | None, everything: bool) -> None:
    """Send letters' original bytes back to their original topic (safe to repeat)."""
    if not (ids or stage or everything):
        fail("syncline dlq redrive: say which letters: --id ID (repeatable), --stage STAGE "
              "or --all")
    config = load_or_fail(obj, config_path)
    settings = config.kafka.settings()
    topics = Topics(config.kafka.topic_prefix)

    async def work() -> int:
        found = await dlq_letters(settings, topics, stage)
        chosen = [item for item in found if everything or stage or item.id in ids]
        missing = sorted(set(ids) - {item.id for item in found})
        if missing:
            fail(f"syncline dlq redrive: no dead letter {', '.join(missing)} "
                  "(see `syncline dlq list`)")
        return await dlq_redrive_letters(settings, chosen)

    sent = run_kafka(settings, work())
    click.echo(f"re-drove {sent} dead letter{'s' if sent != 1 else ''}")


@cli.command()
@click.option("--url", default="http://127.0.0.1:8080", show_default=True,
              help="The worker's web server.")
def status(url: str) -> None:
    """Per system and entity: healthy or not, how far behind, writes given up on, dead
    letters, fields a system does not keep, records whose loop breaker stopped their writes,
    and any other problem a lane reports (an open delete breaker, say).

    Exit code 0 when every lane is healthy, nothing is behind, every write took, no loop
    breaker is open and no lane reports a problem; 1 otherwise.
    """
    try:
        answer = httpx.get(f"{url.rstrip('/')}/status", timeout=5)
        answer.raise_for_status()
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        fail(f"syncline status: no worker answers at {url} ({exc}); is `syncline run` up?")
    lanes = body.get("lanes", {})
    click.echo(f"roles: {', '.join(body.get('roles', []))}; {len(lanes)} lanes")
    trouble = False
    for name, lane in sorted(lanes.items()):
        lag = lane.get("cursor_lag_seconds")
        problems = lane.get("problems", [])
        state = ("NOT ANSWERING" if not lane["healthy"] else "PROBLEMS" if problems else "ok")
        behind = lane.get("behind", 0)
        not_kept = lane.get("not_kept_count", 0)
        breakers = lane.get("loop_breakers_open", 0)
        if lane["healthy"] and breakers:
            state = "LOOP STOPPED"
        elif lane["healthy"] and not_kept:
            state = "NOT KEPT"
        trouble = (trouble or not lane["healthy"] or behind > 0 or not_kept > 0 or breakers > 0
                   or bool(problems))
        click.echo(f"  {name:<24} {state:<14} seq {lane['seq']:<6} "
                   f"cursor lag {'-' if lag is None else f'{lag:.0f} s':<8} "
                   f"records {lane['known_records']:<6} behind {behind:<3} "
                   f"waiting for links {lane['waiting_for_links']} "
                   f"dead letters {lane.get('dead_letters', 0)}")
        if lane.get("last_error"):
            click.echo(f"      last error: {lane['last_error']}")
        for reason in lane.get("not_kept", []):
            click.echo(f"      {reason}")
        if not_kept > len(lane.get("not_kept", [])):
            click.echo(f"      ... {not_kept} fields not kept in all")
        for external_id, why in sorted(lane.get("loop_breakers", {}).items()):
            click.echo(f"      record {external_id}: {why}")
        for problem in problems:
            click.echo(f"      {problem}")
    raise SystemExit(1 if trouble else 0)


@cli.command()
@click.option("--keep-running", is_flag=True,
              help="Leave the systems and the worker running after the story (Ctrl-C stops).")
@click.option("--crm-port", default=8101, show_default=True, type=click.IntRange(1, 65535))
@click.option("--helpdesk-port", default=8102, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--worker-port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--dir", "directory", default=Path("syncline-demo"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo writes its config and the conflict-review report.")
@click.option("--against", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start nothing: play only the story against the systems and broker this "
                   "config names, synced by a worker running elsewhere (deploy/compose.yaml).")
@click.pass_obj
def demo(obj: CliContext | None, keep_running: bool, crm_port: int, helpdesk_port: int,
         worker_port: int, directory: Path, against: Path | None) -> None:
    """Everything local: Kafka, a simulated CRM and helpdesk, a worker, and a short story.

    Creates, edits and deletes flow both ways; two conflicts happen, one decided by policy
    and one held for review. Ends with a summary and the conflict-review report.
    """
    from daemon import demo as demo_module

    env = obj.env if obj is not None else {}
    kafka_port = int(env.get("SYNCLINE_KAFKA_PORT", "19092"))
    code = demo_module.main(demo_module.Ports(crm_port, helpdesk_port, worker_port, kafka_port),
                            keep_running, directory, env, against)
    raise SystemExit(code)


@cli.group("config")
def config_group() -> None:
    """The configuration file described: its JSON Schema and its reference."""


@config_group.command("schema")
def config_schema_command() -> None:
    """Print the JSON Schema of the configuration file (for editors and validators)."""
    click.echo(orjson.dumps(config_schema(), option=orjson.OPT_INDENT_2).decode())


@config_group.command("reference")
def config_reference_command() -> None:
    """Print the configuration reference in Markdown (docs/CONFIG.md is this, generated)."""
    click.echo(config_reference(), nl=False)


register_review(cli)  # conflicts list|show|resolve, report, record


def main() -> None:
    """Entry point of the ``syncline`` console script."""
    cli(prog_name="syncline", obj=CliContext(env=dict(os.environ)))

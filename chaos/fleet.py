"""The daemon's processes and the broker: started, SIGKILLed and started again.

Each worker is ``python -m daemon run --role ...`` with its own log file. A supervisor
starts again, after a short pause, every worker that should run and does not (as systemd's
``Restart=always`` would): after a SIGKILL, or after a worker gave up while the broker was
down. The broker is the one ``deploy/kafka/kafka.sh`` runs on the given port: killed by the
pid in its state directory, started again by the same script.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


@dataclass
class Worker:
    """One ``syncline run`` process: its roles, its web port, its process (if running)."""

    name: str
    roles: tuple[str, ...]
    port: int
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Fleet:
    """The worker processes of one run.

    Args:
        config: the configuration file every worker runs.
        env: the environment (secrets) the configuration names.
        logs: the directory for one log file per worker start.
    """

    def __init__(self, config: Path, env: Mapping[str, str], logs: Path) -> None:
        self.config = config
        self.env = dict(env)
        self.logs = logs
        self.workers: dict[str, Worker] = {}
        self.wanted: set[str] = set()
        self.kills = 0
        self.restarts = 0

    def add(self, name: str, roles: tuple[str, ...], port: int) -> Worker:
        worker = Worker(name, roles, port)
        self.workers[name] = worker
        return worker

    async def start(self, name: str) -> None:
        worker = self.workers[name]
        worker.starts += 1
        log = (self.logs / f"{name}-{worker.starts}.log").open("wb")
        args = [arg for role in worker.roles for arg in ("--role", role)]
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(self.config), *args,
            "--listen", f"127.0.0.1:{worker.port}", cwd=REPO,
            env={**os.environ, **self.env}, stdout=log, stderr=asyncio.subprocess.STDOUT)
        log.close()
        self.wanted.add(name)

    async def ready(self, name: str, within: float = 120) -> None:
        """Wait until worker ``name`` answers ``/ready`` with 200."""
        worker = self.workers[name]
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if not worker.running:
                    raise RuntimeError(f"worker {name} exited: see {self.logs}")
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(f"http://127.0.0.1:{worker.port}/ready")
                    if answer.status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError(f"worker {name} not ready after {within}s: see {self.logs}")

    def running(self) -> list[str]:
        return sorted(n for n, w in self.workers.items() if w.running)

    async def kill(self, name: str) -> None:
        """SIGKILL: no goodbye, no flush. The supervisor starts it again."""
        worker = self.workers[name]
        if worker.process is not None and worker.process.returncode is None:
            worker.process.send_signal(signal.SIGKILL)
            await worker.process.wait()
            self.kills += 1

    async def retire(self, name: str) -> None:
        """Stop wanting ``name``, and stop it (SIGTERM): scaling in."""
        self.wanted.discard(name)
        await self._terminate(self.workers[name])

    async def supervise(self, stop: asyncio.Event, pause: float = 1.5) -> None:
        """Start again every wanted worker that is not running, ``pause`` s after it died."""
        died: dict[str, float] = {}
        while not stop.is_set():
            now = time.monotonic()
            for name in sorted(self.wanted):
                worker = self.workers[name]
                if worker.running:
                    continue
                if name not in died:
                    died[name] = now
                    if worker.process is not None and worker.process.returncode is not None:
                        worker.exits.append(worker.process.returncode)
                elif now - died[name] >= pause:
                    del died[name]
                    self.restarts += 1
                    await self.start(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async def stop(self) -> None:
        self.wanted.clear()
        await asyncio.gather(*(self._terminate(w) for w in self.workers.values()))

    @staticmethod
    async def _terminate(worker: Worker) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


def broker_pid_file(port: int, environ: Mapping[str, str]) -> Path:
    """Where ``deploy/kafka/kafka.sh`` keeps the pid of the broker on ``port``."""
    if environ.get("SYNCLINE_KAFKA_STATE"):
        return Path(environ["SYNCLINE_KAFKA_STATE"]) / "kafka.pid"
    state = Path(environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "syncline" / f"kafka-{port}" / "kafka.pid"


async def kill_broker(port: int) -> int:
    """SIGKILL the local broker on ``port``; its pid."""
    pid = int(broker_pid_file(port, os.environ).read_text().strip())
    os.kill(pid, signal.SIGKILL)
    return pid


async def start_broker(port: int) -> None:
    """``kafka.sh up`` on ``port``: returns once the broker answers."""
    process = await asyncio.create_subprocess_exec(
        str(KAFKA_SH), "up", env={**os.environ, "SYNCLINE_KAFKA_PORT": str(port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kafka.sh up failed: {out.decode(errors='replace')}")

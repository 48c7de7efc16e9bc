"""Test sessions sharing one broker: each deletes, at its end, the topics made during it —
unless another session on that broker is still running; then the last one to end does.

A session at its end used to delete every topic made since it began. With two sessions on
one broker, the one ending first deleted the other's live topics (and ``__consumer_offsets``
and ``__transaction_state`` on a broker that had none when it began); the other's workers,
still running, made them again empty, one partition, default settings (the broker
auto-creates topics): a chaos run read its ``conflicts`` topic back empty, or its pipeline
never settled (docs/RELIABILITY.md, "Runs sharing a broker").

Each running session is a file ``<directory>/<broker>/<id>.json`` holding its pid and the
topics there were when it began. A session that ends while others run leaves its topics to
them: it narrows each of theirs to the topics there were when both had begun, and deletes
nothing. The last one deletes everything made since the earliest of them began. Internal
topics (``__...``) are never deleted. The files are read and written under a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

DIRECTORY = Path(tempfile.gettempdir()) / "syncline-test-sessions"


async def topics_of(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="syncline-tests")
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def delete(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="syncline-tests")
    await admin.start()
    try:
        for start in range(0, len(names), 200):
            await admin.delete_topics(names[start:start + 200], timeout_ms=60_000)
    finally:
        await admin.close()


def made_since(before: set[str], now: set[str]) -> list[str]:
    """The topics to delete: made since ``before``, never a broker's internal one."""
    return sorted(t for t in now - before if not t.startswith("__"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


class Session:
    """One test session's claim on a broker's topics.

    ``only``: delete only topics it accepts (for a test of this module, on a broker other
    sessions use)."""

    def __init__(self, bootstrap: str, directory: Path = DIRECTORY,
                 only: Callable[[str], bool] | None = None) -> None:
        self.bootstrap = bootstrap
        self.only = only
        self.place = directory / re.sub(r"[^A-Za-z0-9_.-]", "_", bootstrap)
        self.file = self.place / f"{uuid.uuid4().hex}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.place.mkdir(parents=True, exist_ok=True)
        with (self.place / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _others(self) -> dict[Path, set[str]]:
        """The other sessions still running, each with its topics at its start; the files of
        sessions that died are removed."""
        others: dict[Path, set[str]] = {}
        for path in self.place.glob("*.json"):
            if path == self.file:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                data = json.loads(path.read_text())
                if _alive(int(data["pid"])):
                    others[path] = set(data["before"])
                else:
                    path.unlink()
        return others

    def begin(self) -> None:
        with self._locked():
            before = asyncio.run(topics_of(self.bootstrap))
            self.file.write_text(json.dumps({"pid": os.getpid(), "before": sorted(before)}))

    def end(self) -> list[str]:
        """Delete the topics made since the session (or an overlapping one) began, if no
        other session runs; the names deleted."""
        with self._locked():
            before = set(json.loads(self.file.read_text())["before"])
            others = self._others()
            for path, theirs in others.items():
                path.write_text(json.dumps({"pid": json.loads(path.read_text())["pid"],
                                            "before": sorted(theirs & before)}))
            self.file.unlink()
            if others:
                return []
            names = [t for t in made_since(before, asyncio.run(topics_of(self.bootstrap)))
                     if self.only is None or self.only(t)]
            if names:
                asyncio.run(delete(self.bootstrap, names))
            return names

"""Serving a simulated system on a real socket: for tests (``run_crm``) and the command line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from daemon.listen import CannotListen, listening_socket
from daemon.sandbox.crm import Crm
from daemon.sandbox.errors import ListenError
from daemon.sandbox.helpdesk import Helpdesk
from daemon.sandbox.system import SimulatedSystem

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class RunningSystem:
    """A simulated system listening on ``host:port``."""

    system: SimulatedSystem
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8101``."""
        return f"http://{self.host}:{self.port}"


@asynccontextmanager
async def serve(
    system: SimulatedSystem, *, host: str = LOOPBACK, port: int = 0
) -> AsyncIterator[RunningSystem]:
    """Serve ``system`` until the block exits, then stop it and close it.

    ``port=0`` picks a free port. Responses held by a timeout fault are let go at exit.

    Raises:
        ListenError: the address cannot be bound (e.g. the port is taken).
    """
    try:
        sock = listening_socket(host, port)
    except CannotListen as exc:
        await system.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.reason}") from None
    runner = web.AppRunner(system.make_app(), access_log=None, shutdown_timeout=2.0)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        yield RunningSystem(system, host, sock.getsockname()[1])
    finally:
        await runner.cleanup()
        sock.close()
        await system.close()


def run_crm(
    *, host: str = LOOPBACK, port: int = 0, **options: Any
) -> AbstractAsyncContextManager[RunningSystem]:
    """Serve a new :class:`~daemon.sandbox.crm.Crm` built with ``options``.

    ``async with run_crm(token="t") as crm: crm.url``
    """
    return serve(Crm(**options), host=host, port=port)


def run_helpdesk(
    *, host: str = LOOPBACK, port: int = 0, **options: Any
) -> AbstractAsyncContextManager[RunningSystem]:
    """Serve a new :class:`~daemon.sandbox.helpdesk.Helpdesk` built with ``options``."""
    return serve(Helpdesk(**options), host=host, port=port)

"""Serving a simulated system on a real socket: for tests (``run_crm``) and the command line."""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

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
        sock = _listening_socket(host, port)
    except ListenError:
        await system.close()
        raise
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


def _listening_socket(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ListenError(f"cannot listen on {host}:{port}: not a port number")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted server take its port back while old connections sit in TIME_WAIT;
        # a port another process listens on is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        in_use = exc.errno == errno.EADDRINUSE
        reason = "address already in use" if in_use else (exc.strerror or str(exc))
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock

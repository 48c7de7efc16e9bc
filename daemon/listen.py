"""A listening socket for the servers the daemon runs (the worker's, the simulated systems')."""

from __future__ import annotations

import errno
import socket


class CannotListen(Exception):
    """The address cannot be listened on; ``reason`` says why, for the caller's own error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking socket (one, even when ``port`` is 0: any free port)."""
    if not 0 <= port <= 65535:
        raise CannotListen("not a port number")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot resolve {host!r}: {exc.strerror}") from None
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
        raise CannotListen("address already in use" if in_use
                           else (exc.strerror or str(exc))) from None
    sock.setblocking(False)
    return sock

"""Ask a Kafka broker for cluster metadata; exit 0 once it answers.

Used by ``kafka.sh`` to wait until a freshly started broker serves clients. It needs
nothing but the Python standard library, so it works before the project's virtualenv
exists. It sends one Metadata request (version 4: the oldest that Kafka 4.x still
accepts, and a non-flexible version, so the encoding stays a few struct calls) for no
topics, and succeeds when the answer lists at least one broker.

Usage: ``python3 probe.py HOST:PORT [--timeout SECONDS]``.
Exit codes: 0 answered, 1 no usable answer (refused, closed, timed out, malformed).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys

_METADATA = 3
_VERSION = 4
_CORRELATION_ID = 0x5C1E


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _request() -> bytes:
    header = struct.pack(">hhi", _METADATA, _VERSION, _CORRELATION_ID) + _string("kafka.sh-probe")
    # topics: an empty array (not null: null means "all topics"); no auto-creation.
    body = struct.pack(">i", 0) + struct.pack(">?", False)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def metadata_brokers(host: str, port: int, timeout: float) -> int:
    """Return how many brokers the metadata answer lists."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_request())
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        response = _read_exactly(sock, size)
    correlation_id, _throttle_ms, brokers = struct.unpack_from(">iii", response, 0)
    if correlation_id != _CORRELATION_ID:
        raise ConnectionError(f"unexpected correlation id {correlation_id}")
    return int(brokers)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT of the broker")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    try:
        brokers = metadata_brokers(host, int(port), args.timeout)
    except (OSError, struct.error, ValueError) as exc:
        print(f"no metadata from {args.address}: {exc}", file=sys.stderr)
        return 1
    if brokers < 1:
        print(f"{args.address} answered but lists no brokers yet", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

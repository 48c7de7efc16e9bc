"""What the tests of the shell scripts in deploy/ share: a PATH with only some tools, a port."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterable
from pathlib import Path


def tools_only(tmp_path: Path, tools: Iterable[str], *, all_needed: bool) -> Path:
    """A directory for PATH holding links to ``tools`` and nothing else; with ``all_needed``
    each must be on this machine, else a missing one is left out."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found or not all_needed, tool
        if found:
            (bin_dir / tool).symlink_to(found)
    return bin_dir


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port

"""Files of the repository that an installed syncline needs, shipped inside the package.

``syncline demo`` runs the example configuration (``examples/syncline.yaml``) and starts the
local broker with ``deploy/kafka/kafka.sh`` (with the files beside it, and ``deploy/lib.sh``,
which it sources as ``../lib.sh``); here they are links to those files, which a built wheel
holds as copies (``package-data`` in pyproject.toml), so the demo works from a wheel
installed anywhere.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from daemon.errors import DaemonError


class MissingFile(DaemonError):
    """A shipped file is not on disk (syncline was installed without its package data)."""


def _path(*parts: str) -> Path:
    found = resources.files(__name__).joinpath(*parts)
    if not isinstance(found, Path) or not found.is_file():
        raise MissingFile(f"syncline's package is missing {'/'.join(parts)} (in {__name__}); "
                          "reinstall it from a wheel or a checkout of the repository")
    return found


def example_config() -> str:
    """The text of the example configuration (``examples/syncline.yaml``)."""
    return _path("syncline.yaml").read_text(encoding="utf-8")


def kafka_script() -> Path:
    """The script that runs the local single-node broker (``deploy/kafka/kafka.sh``); run it
    with ``bash`` (a copy may have lost its executable bit). In a checkout: the file in
    ``deploy/kafka/``."""
    return _path("kafka", "kafka.sh").resolve()

"""deploy/compose/syncline.yaml is the example config, pointed at the services of
deploy/compose.yaml (and nothing else changed), so the compose demo shows what the example says."""

from __future__ import annotations

from pathlib import Path

import yaml

from daemon.config import load_config
from daemon.demo import ENV, demo_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_CONFIG = ROOT / "deploy" / "compose" / "syncline.yaml"


def test_the_compose_config_is_the_example_pointed_at_the_services(tmp_path: Path) -> None:
    expected = demo_config("http://crm:8101", "http://helpdesk:8102", "kafka:9092",
                           "syncline", tmp_path)
    assert COMPOSE_CONFIG.read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")
    config = load_config(COMPOSE_CONFIG, ENV)
    assert config.kafka.bootstrap == "kafka:9092"


def test_compose_runs_the_services_the_config_names() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"kafka", "crm", "helpdesk", "worker", "story"} <= set(services)
    assert services["crm"]["command"][services["crm"]["command"].index("--port") + 1] == "8101"
    assert services["helpdesk"]["command"][
        services["helpdesk"]["command"].index("--port") + 1] == "8102"
    # The config's secrets are all given to the worker.
    assert set(ENV) <= set(services["worker"]["environment"])
    assert "./compose/syncline.yaml:/etc/syncline/syncline.yaml:ro" in \
        services["worker"]["volumes"]

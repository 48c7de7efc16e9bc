"""The simulated systems, and the generic connector configured for them by the example config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from daemon.connector.config import SystemConfig
from daemon.connector.rest import RestEntity, build_client

EXAMPLE = Path(__file__).parents[3] / "examples" / "syncline.yaml"

ENV = {"CRM_TOKEN": "test-crm-token", "CRM_WEBHOOK_SECRET": "test-webhook-secret",
       "SYNCLINE_REVIEW_TOKEN": "test-review-token",
       "HELPDESK_API_KEY": "test-helpdesk-key"}


def example_system(name: str, base_url: str, **changes: Any) -> SystemConfig:
    """The example config's system ``name``, pointed at ``base_url``."""
    data = yaml.safe_load(EXAMPLE.read_text())["systems"][name]
    data = {**data, "base_url": base_url, **changes}
    return SystemConfig.model_validate(data, context={"env": ENV})


def connector(name: str, base_url: str, entity: str = "contact", **changes: Any) -> RestEntity:
    """The generic connector of one entity of an example system."""
    config = example_system(name, base_url, **changes)
    return RestEntity(build_client(name, config), name, entity, config.entities[entity])

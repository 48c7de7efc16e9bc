"""``syncline check --write-probe`` refuses to make a scratch record while ``syncline run``
runs the lanes of a system it would write to: the worker could copy the record to the other
systems before the probe deletes it (and then copy the delete, per the delete policy)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from streams.kafka import KafkaSettings
from tests.e2e.harness import ENV, REPO, Stack, stack
from tests.e2e.test_api_behaviours import started_with

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


async def check(s: Stack, *args: str) -> tuple[int, str, str]:
    assert s.config_path is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", "--config", str(s.config_path), *args,
        cwd=REPO, env={**os.environ, **ENV}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode is not None
    assert "Traceback" not in err.decode()
    return process.returncode, out.decode(), err.decode()


async def test_the_write_probe_is_refused_while_the_lanes_run(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    async with stack(tmp_path, kafka_settings) as s:
        await started_with(s, "crm", "ada@example.com", "Ada")
        assert s.config is not None
        prefix = s.config.kafka.topic_prefix

        code, out, err = await check(s, "--write-probe")

        assert code == 2, out + err
        assert (f"--write-probe refused: `syncline run` is running the lanes of crm "
                f"(consumer group {prefix}.lanes.crm: ") in err
        assert f"helpdesk (consumer group {prefix}.lanes.helpdesk: " in err
        assert "created scratch record" not in out
        assert not [c for c in await s.raw("crm") if "syncline-check" in str(c)]
        # Without the probe the check runs as ever.
        code, out, err = await check(s)
        assert code == 0, out + err

        await s.stop()  # its lanes leave their groups as it stops
        code, out, err = await check(s, "--write-probe")
        assert code == 0, out + err
        assert "write probe: no worker runs the lanes of crm, helpdesk" in out
        assert "write probe: created scratch record" in out

"""Config files with every kind of mistake: a clear message naming the file and the place,
exit code 2, never a traceback.

The example configuration, mutated by Hypothesis: a key removed, an unknown key added, a value
of the wrong type, the YAML text truncated or broken. In-process through ``load_config`` for
breadth (anything but a ``Config`` or a ``ConfigError`` is a bug); then ``syncline check`` and
``syncline run`` as processes for a few of the refused files.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import Config, load_config
from daemon.errors import ConfigError
from tests.daemon.test_cli_check import EXAMPLE_ENV
from tests.hostile import count, examples

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_TEXT = (REPO / "examples" / "syncline.yaml").read_text(encoding="utf-8")
EXAMPLE = yaml.safe_load(EXAMPLE_TEXT)
AREA = "config"

WRONG_VALUES = st.sampled_from([None, 0, -1, 3.5, True, "", "x", [], ["a", 1], {}, {"z": 1},
                                "${NOPE}", "a" * 300])


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in the tree (keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


ALL_PATHS = paths(EXAMPLE)


@st.composite
def broken_config(draw: st.DrawFn) -> tuple[str, str]:
    """``(what was done, the YAML text)`` of the example with one or two mistakes."""
    data = copy.deepcopy(EXAMPLE)
    done = []
    for _ in range(draw(st.integers(1, 2))):
        how = draw(st.sampled_from(["remove", "unknown key", "wrong type", "text"]))
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if how == "remove":
                del parent[last]
            elif how == "unknown key":
                target = parent[last]
                if isinstance(target, dict):
                    target[draw(st.sampled_from(["colour", "bootstrapp", "enitites", "x-y"]))] = 1
                else:
                    parent[last] = {"unexpected": target}
            elif how == "wrong type":
                parent[last] = draw(WRONG_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mistake removed or replaced this path
        done.append(f"{how} at {'.'.join(map(str, path))}" if how != "text" else how)
    text = yaml.safe_dump(data, sort_keys=False)
    if "text" in done:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\t", ": : ", "{", "]", "- x\n", "\x00", "&a *b",
                                                 "!!python/object:os.system ''", "\n  bad"])) \
            + text[at:]
    return "; ".join(done), text


def load(text: str) -> Config | ConfigError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "syncline.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path, EXAMPLE_ENV)
        except ConfigError as exc:
            assert exc.problems, "a config error without a problem"
            for line in exc.problems:
                assert line.startswith(f"{path}:") or line.startswith(f"{path} "), line
            return exc


@examples(150)
@given(broken_config())
def test_a_broken_config_is_refused_with_the_file_and_the_place_never_an_exception(
        case: tuple[str, str]) -> None:
    _, text = case
    outcome = load(text)  # anything raised but ConfigError fails the test
    count(AREA, "refusals" if isinstance(outcome, ConfigError) else "accepted after mutation")
    count(AREA, "examples run")


def test_the_example_itself_loads() -> None:
    assert isinstance(load(EXAMPLE_TEXT), Config)


@pytest.mark.slow
@examples(3, most=12)
@given(broken_config().filter(lambda case: isinstance(load(case[1]), ConfigError)))
def test_check_and_run_refuse_a_broken_config_with_exit_2_and_no_traceback(
        case: tuple[str, str]) -> None:
    _, text = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "syncline.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path, EXAMPLE_ENV)
        except ConfigError as exc:
            expected = str(exc)
        else:
            raise AssertionError("the filter let an accepted config through")
        for command in (["check", "--timeout", "1"], ["run", "--listen", "127.0.0.1:0"]):
            result = subprocess.run(
                [sys.executable, "-m", "daemon", command[0], "--config", str(path),
                 *command[1:]], capture_output=True, text=True, timeout=60, check=False,
                cwd=REPO, env={**os.environ, **EXAMPLE_ENV})
            output = result.stdout + result.stderr
            assert result.returncode == 2, output
            assert "Traceback" not in output
            assert expected in result.stderr
            count(AREA, f"`syncline {command[0]}` refusals (exit 2)")


def test_params_of_the_wrong_type_are_named_not_a_traceback() -> None:
    """Found by the fuzzing above: ``params: -1`` next to a ``path`` raised TypeError."""
    text = EXAMPLE_TEXT.replace('params: {email: "{email}"}', "params: -1")
    assert "params: -1" in text
    outcome = load(text)
    assert isinstance(outcome, ConfigError)
    assert any("systems.crm.entities.contact.lookup.params" in line
               for line in outcome.problems), outcome.problems

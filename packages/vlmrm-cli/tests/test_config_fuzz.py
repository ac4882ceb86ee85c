"""Hostile configs: random keys, types and values are either accepted and usable, or refused with
one clear line naming a key — never a traceback from deep inside pydantic, gymnasium or SB3."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from conftest import cartpole_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vlmrm_cli.cli import main
from vlmrm_cli.config import ConfigError, dump_config, load_config, validate_config
from vlmrm_cli.training import resolve

VALID = cartpole_config(base_path="runs", model="local-dir:/nowhere")  # the model is loaded only by train

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "auto", "sac", "dqn", "cuda:7", "MlpPolicy", "1e-3", "null", "-1", "0"]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in data.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths.extend(_paths(value, (*prefix, key)))
    return paths


PATHS = _paths(VALID)


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    config = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = config
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if action == "set":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_any_config_is_accepted_and_usable_or_refused_naming_a_key(data: dict[str, Any]) -> None:
    try:
        config = resolve(validate_config(data))
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and message.strip()
        assert ":" in message  # "key.path: what is wrong"
        return
    # Accepted: the saved form reads back as the same config, and numbers are real numbers.
    assert load_config(dump_config(config)) == config
    assert config.rl.n_steps >= 1 and math.isfinite(config.reward.alpha)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_cli_exits_0_or_2_with_one_line_and_no_traceback(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    result = CliRunner().invoke(main, ["config", "show", text])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("Error: ")


def test_a_key_holding_a_line_break_is_still_one_line() -> None:
    """Found by the fuzz test above: a policy_kwargs key "\\r" split the error over two lines."""
    data = cartpole_config(Path("runs"), "local-dir:/nowhere")
    data["rl"]["policy_kwargs"] = {"net_arch": [16, 16], "\r": None}
    result = CliRunner().invoke(main, ["config", "show", yaml.safe_dump(data)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: rl.policy_kwargs.") and "takes no such argument" in line

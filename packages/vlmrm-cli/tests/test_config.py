"""Config validation, YAML reading, --set overrides and `vlmrm config show`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from vlmrm_cli.cli import main
from vlmrm_cli.config import (
    DEFAULT_MODEL,
    ConfigError,
    apply_overrides,
    load_config,
    parse_yaml,
    validate_config,
)

# The research code README's own example, verbatim: it must validate as written.
SEED_README_CONFIG = (Path(__file__).parent / "data" / "research_readme_config.yaml").read_text()


def test_seed_readme_config_validates_as_written() -> None:
    config = load_config(SEED_README_CONFIG)
    assert config.env_name == "vlmrm/Humanoid-v0"  # what Humanoid-v4 meant in the research code
    assert config.reward.batch_size == 1600  # does not divide n_envs * episode_length: no such rule
    assert config.rl.learning_rate == pytest.approx(3e-4)  # YAML 1.1 would read "3e-4" as a string
    assert config.reward.cache_dir == "/root/.cache"
    assert config.logging.tensorboard_freq == 800


def test_config_show_resolves_algorithm_and_defaults(write_config, make_config) -> None:
    config = make_config(rl={"n_steps": 300, "batch_size": None, "episode_length": None})
    del config["rl"]["batch_size"], config["rl"]["episode_length"], config["logging"]
    result = CliRunner().invoke(main, ["config", "show", str(write_config(config))])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["rl"]["algorithm"] == "dqn"  # CartPole's actions are discrete
    assert shown["rl"]["batch_size"] == 32  # DQN's own default, written out
    assert shown["rl"]["episode_length"] == 200  # vlmrm/CartPole-v0's registered length
    assert shown["logging"] == {
        "checkpoint_freq": 100_000,
        "video_freq": 100_000,
        "tensorboard_freq": 1000,
        "replay_buffer_max_gb": 4.0,
        "video_fps": 30,
    }
    # What is shown is itself a valid config, and resolving it again changes nothing.
    assert load_config(result.stdout) == validate_config(shown)
    again = CliRunner().invoke(main, ["config", "show", result.stdout])
    assert again.stdout == result.stdout


def test_continuous_env_gets_sac(write_config, make_config) -> None:
    config = make_config(env_name="vlmrm/MountainCarContinuous-CLIP-v0", rl={"gradient_steps": 1})
    result = CliRunner().invoke(main, ["config", "show", str(write_config(config))])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["rl"]["algorithm"] == "sac"
    assert shown["rl"]["tau"] == 0.005  # SAC's default


def test_overrides_reach_every_kind_of_key(write_config, make_config) -> None:
    path = write_config(make_config())
    result = CliRunner().invoke(
        main,
        [
            "config", "show", str(path),
            "--set", "rl.n_steps=1000",
            "--set", "reward.target_prompts=[a pole, a cart]",
            "--set", "rl.learning_rate=1e-3",
            "--set", "rl.algorithm_kwargs.exploration_fraction=0.2",
            "--set", "wandb.entity=lab",
            "--set", "reward.cache_dir=",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["rl"]["n_steps"] == 1000
    assert shown["reward"]["target_prompts"] == ["a pole", "a cart"]
    assert shown["rl"]["learning_rate"] == 1e-3
    assert shown["rl"]["algorithm_kwargs"] == {"exploration_fraction": 0.2}
    assert shown["wandb"]["entity"] == "lab"
    assert shown["reward"]["cache_dir"] is None


def test_overrides_do_not_change_the_input() -> None:
    data = {"rl": {"n_steps": 5}}
    assert apply_overrides(data, ["rl.n_steps=7"]) == {"rl": {"n_steps": 7}}
    assert data == {"rl": {"n_steps": 5}}


def test_default_model_matches_vlmrm_envs() -> None:
    import vlmrm_envs

    assert DEFAULT_MODEL == vlmrm_envs.DEFAULT_MODEL


BAD_OVERRIDES = [
    # (override, the one-line message must contain)
    ("rl.n_step=5", "rl.n_step: unknown key; did you mean 'rl.n_steps'?"),
    ("n_steps=5", "n_steps: unknown key; did you mean 'rl.n_steps'?"),
    ("reward.target_promts=[x]", "did you mean 'reward.target_prompts'?"),
    ("rl.n_steps=-5", "rl.n_steps: Input should be greater than 0"),
    ("rl.n_steps=ten", "rl.n_steps: Input should be a valid integer"),
    ("rl.n_steps=true", "rl.n_steps: Input should be a number, not a boolean"),
    ("rl.n_steps=1.5", "rl.n_steps: Input should be a valid integer"),
    ("rl.gamma=1.5", "rl.gamma: Input should be less than or equal to 1"),
    ("rl.tau=0", "rl.tau: Input should be greater than 0"),
    ("rl.gradient_steps=0", "rl.gradient_steps: Input should be a positive integer, or -1"),
    ("reward.alpha=-0.1", "reward.alpha: Input should be greater than or equal to 0"),
    ("reward.target_prompts=[]", "reward.target_prompts: List should have at least 1 item"),
    ("reward.target_prompts=a robot", "reward.target_prompts: Input should be a valid list"),
    ("reward.target_prompts=['  ']", "reward.target_prompts[0]: must not be empty or blank"),
    ("reward.name=blip", "reward.name: Input should be 'clip'"),
    ("reward.devices=[]", "reward.devices: List should have at least 1 item"),
    ("rl.algorithm=ppo", "rl.algorithm: Input should be 'auto', 'sac', 'td3', 'tqc', 'dqn' or 'qrdqn'"),
    ("rl=5", "rl: should be a section of keys"),
    ("seed.value=1", "seed.value: seed is a value, not a section with keys"),
    ("seed=-1", "seed: Input should be greater than or equal to 0"),
    ("render.width=8", "render.width: Input should be greater than or equal to 16"),
    ("logging.video_freq=0", "logging.video_freq: Input should be greater than 0"),
    ("wandb.mode=sometimes", "wandb.mode: Input should be 'auto', 'online', 'offline' or 'disabled'"),
    ("env_name=CartPol-v1", "env_name: 'CartPol-v1' is not a registered Gymnasium env; did you mean 'CartPole-v1'?"),
    ("rl.n_steps", "--set 'rl.n_steps': expected KEY.PATH=VALUE"),
    ("rl.n_steps=[1", "--set rl.n_steps line 1, column 3: malformed YAML"),
    # Found once the env is known (after the schema):
    ("rl.algorithm=sac", "rl.algorithm: sac needs a Box action space, but vlmrm/CartPole-v0 has Discrete(2); use one of dqn, qrdqn"),
    ("rl.policy_name=CnnPolicyy", "rl.policy_name: dqn has no policy 'CnnPolicyy'"),
    ("rl.algorithm_kwargs={exploration_fractoin: 0.1}", "rl.algorithm_kwargs.exploration_fractoin: DQN takes no such argument; did you mean 'exploration_fraction'?"),
    ("rl.algorithm_kwargs={gamma: 0.9}", "rl.algorithm_kwargs.gamma: set rl.gamma instead"),
    ("rl.algorithm_kwargs={reward_model: 1}", "rl.algorithm_kwargs.reward_model: DQN takes no such argument"),
    ("reward.devices=[tpu:0]", "reward.devices: 'tpu:0' is not a torch device"),
    ("reward.devices=[cuda:99]", "reward.devices: device 'cuda:99' is not available"),
    ("reward.backend=nope", "reward: "),
]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), BAD_OVERRIDES, ids=[case[0] for case in BAD_OVERRIDES])
def test_bad_config_exits_2_with_one_line_naming_the_key(
    override: str, message: str, write_config, make_config, tmp_path
) -> None:
    path = write_config(make_config())
    result = CliRunner().invoke(main, ["train", str(path), "--set", override, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing started


MALFORMED_YAML = [
    ("env_name: CartPole-v1\nrl:\n  n_steps: 10\n   bad: 1\n", "line 4, column 7: malformed YAML: mapping values are not allowed here"),
    ("env_name: CartPole-v1\nrl: {n_steps: 10\n", "line 3, column 1: malformed YAML"),
    ("env_name: CartPole-v1\nenv_name: Pendulum-v1\n", "line 2, column 1: malformed YAML: duplicate key 'env_name'"),
    ("- a\n- b\n", "a config must be a YAML mapping of keys, got list"),
    ("# nothing\n", "the config is empty"),
    ("env_name: CartPole-v1\nrl: !!python/object:os.system {}\n", "malformed YAML"),  # safe loading only
]  # fmt: skip


@pytest.mark.parametrize("as_text", [False, True], ids=["file", "text"])
@pytest.mark.parametrize(("text", "message"), MALFORMED_YAML, ids=range(len(MALFORMED_YAML)))
def test_malformed_yaml_exits_2_with_one_line(text: str, message: str, as_text: bool, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    source = text if as_text and ("\n" in text.strip() or ":" in text) else str(path)
    result = CliRunner().invoke(main, ["train", "--", source])  # text may begin with "-"
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_missing_file_and_missing_keys(tmp_path) -> None:
    result = CliRunner().invoke(main, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: no such config file" in result.stderr
    result = CliRunner().invoke(main, ["train", "env_name: CartPole-v1"])
    assert result.exit_code == 2
    assert "reward: required key is missing; rl: required key is missing" in result.stderr


def test_all_errors_reported_at_once(make_config) -> None:
    config = make_config(rl={"n_steps": 0, "gamma": 2})
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value) == (
        "rl.n_steps: Input should be greater than 0 (got 0); rl.gamma: Input should be less than or equal to 1 (got 2)"
    )


def test_yaml_reads_exponents_as_floats_and_stays_safe() -> None:
    assert parse_yaml("a: 3e-4\nb: 1E5\nc: 42\nd: '3e-4'\ne: 1.5") == {
        "a": 3e-4,
        "b": 1e5,
        "c": 42,
        "d": "3e-4",
        "e": 1.5,
    }
    with pytest.raises(ConfigError, match="malformed YAML"):
        parse_yaml("!!python/object/apply:os.system ['true']")


def test_train_needs_exactly_one_of_config_and_resume(tmp_path) -> None:
    result = CliRunner().invoke(main, ["train"])
    assert result.exit_code == 2 and "missing CONFIG" in result.stderr
    result = CliRunner().invoke(main, ["train", "x.yaml", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not both" in result.stderr

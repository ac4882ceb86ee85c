"""The ``vlmrm train`` config: the research code's schema key for key, plus additions with defaults.

Every section forbids unknown keys. :func:`load_config` reads a YAML file or YAML text, applies
``--set`` overrides and validates; :func:`resolve_config` then fills what depends on the env
(the algorithm, the algorithm's own defaults). Every problem raises one :class:`ConfigError`
whose message is a single line naming the key path, e.g. ``rl.n_steps: ...``.
"""

from __future__ import annotations

import difflib
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import gymnasium as gym
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vlmrm_cli.algorithms import ALGORITHM_INFO, algorithm_class

__all__ = [
    "ALGORITHMS",
    "RESEARCH_ENV_NAMES",
    "Config",
    "ConfigError",
    "LoggingConfig",
    "RLConfig",
    "RenderConfig",
    "RewardConfig",
    "WandbConfig",
    "algorithm_class",
    "apply_overrides",
    "dump_config",
    "env_module",
    "load_config",
    "parse_yaml",
    "read_config_source",
    "research_env_notice",
    "resolve_config",
    "set_key",
    "validate_config",
]

# The open_clip model used when a config names none: small enough for any GPU. Kept equal to
# vlmrm_envs.DEFAULT_MODEL (a test checks), without importing torch to read a config.
DEFAULT_MODEL = "ViT-B-32/laion2b_s34b_b79k"

ALGORITHMS: dict[str, str] = {
    "sac": "Box",
    "td3": "Box",
    "tqc": "Box",
    "dqn": "Discrete",
    "qrdqn": "Discrete",
}
"""Algorithm name -> the action space it needs."""

# rl keys that map one to one onto constructor arguments of the algorithm; None in the config
# means "the algorithm's own default", which resolve_config writes in.
ALGORITHM_ARGUMENTS = (
    "learning_starts",
    "train_freq",
    "batch_size",
    "gradient_steps",
    "tau",
    "gamma",
    "learning_rate",
    "buffer_size",
)


RESEARCH_ENV_NAMES: dict[str, str] = {
    "Humanoid-v4": "vlmrm/Humanoid-v0",
    "CartPole-v1": "vlmrm/CartPole-v0",
    "MountainCarContinuous-v0": "vlmrm/MountainCarContinuous-v0",
}
"""The research code's ``env_name`` values -> the vlmrm envs they meant there (the paper's envs).

Gymnasium's stock envs stay reachable as ``gymnasium:CartPole-v1``."""

# The research code's schema had these keys; they are moved to where vlmrm keeps them.
# rl.KEY -> a constructor argument of the algorithm (rl.algorithm_kwargs.KEY).
_RESEARCH_ALGORITHM_KEYS = ("ent_coef", "use_sde", "target_update_interval")
# reward.KEY -> env_kwargs.KEY (the research code configured the Humanoid's look under reward).
_RESEARCH_ENV_KEYS = {"camera_config": "camera", "textured": "textured"}


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the key path."""


def research_env_notice(env_name: Any) -> str | None:
    """One line saying which env a research-code ``env_name`` trains on, and how to opt out."""
    if not isinstance(env_name, str) or env_name not in RESEARCH_ENV_NAMES:
        return None
    return (
        f"env_name: {env_name} is the research code's name for the paper's env: training on "
        f"{RESEARCH_ENV_NAMES[env_name]} (the paper's frames, no termination); for Gymnasium's stock "
        f"env write env_name: gymnasium:{env_name}"
    )


def _research_keys_moved(data: Any) -> Any:
    """``data`` with the research code's keys (``rl.ent_coef``, ``rl.rl_kwargs``,
    ``reward.camera_config``, ...) moved to vlmrm's (``rl.algorithm_kwargs``, ``env_kwargs``)."""
    if not isinstance(data, dict):
        return data
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    rl, reward = data.get("rl"), data.get("reward")
    if isinstance(rl, dict):
        moved = rl.pop("rl_kwargs") if isinstance(rl.get("rl_kwargs"), dict) else {}
        moved.update((key, rl.pop(key)) for key in _RESEARCH_ALGORITHM_KEYS if key in rl)
        _merge_into(rl, "algorithm_kwargs", moved, "rl.algorithm_kwargs")
    if isinstance(reward, dict):
        moved = {env_key: reward.pop(key) for key, env_key in _RESEARCH_ENV_KEYS.items() if key in reward}
        _merge_into(data, "env_kwargs", moved, "env_kwargs")
    return data


def _merge_into(section: dict[str, Any], key: str, moved: dict[str, Any], where: str) -> None:
    existing = section.get(key, {})
    if not moved or not isinstance(existing, dict):
        return  # nothing to move, or validation names the malformed section
    for name, value in moved.items():
        if name in existing and existing[name] != value:
            raise ValueError(
                f"{where}.{name} is given twice (once by its research-code key) with different values"
            )
    section[key] = {**existing, **moved}


def _reject_bool(value: Any) -> Any:
    # pydantic's lax mode reads True as 1; in a config, `n_steps: yes` is a mistake.
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


_Number = BeforeValidator(_reject_bool)
PositiveInt = Annotated[int, _Number, Field(gt=0)]
NonNegativeInt = Annotated[int, _Number, Field(ge=0)]
Fraction = Annotated[float, _Number, Field(ge=0.0, le=1.0)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]


def env_module(env_name: str) -> str | None:
    """The module of a ``module:EnvId`` env name (imported by ``gym.make`` to register the id), or None."""
    module, colon, _ = env_name.partition(":")
    return module if colon else None


def _check_installed(module: str) -> None:
    """Raise ValueError unless ``module`` may be named by a config: imported already, or found among
    the installed modules (``sys.path``, never the working directory that ``python -m`` adds),
    outside the standard library and not a ``__main__``. Nothing is imported to find out."""
    if "__main__" in module.split("."):
        raise ValueError(f"a config may not name a __main__ module ({module!r})")
    if module in sys.modules:
        return
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names:
        raise ValueError(
            f"{top!r} is in Python's standard library, which registers no env; name an installed module"
        )
    missing = ValueError(
        f"no installed module {module!r} (a config may name only a module installed for this Python)"
    )
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: finders only, nothing imported
    except (ImportError, ValueError):
        raise missing from None
    parts = module.split(".")
    for depth in range(1, len(parts)):  # submodules: searched in the package folder, its __init__ unrun
        if spec is None or not spec.submodule_search_locations:
            raise missing
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: depth + 1]), spec.submodule_search_locations
        )
    if spec is None:
        raise missing


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RewardConfig(_Section):
    """``reward``: the CLIP reward model (goal-baseline reward, paper eq. 3)."""

    name: Literal["clip"] = "clip"
    pretrained_model: Text = DEFAULT_MODEL
    """open_clip ``"ARCH/TAG"``, ``"ARCH/path.pt"``, ``"hf-hub:org/repo"`` or ``"local-dir:/folder"``."""
    batch_size: PositiveInt = 256
    """Frames per CLIP forward pass, split across ``devices``; any value works."""
    alpha: Fraction = 0.0
    target_prompts: list[Text] = Field(min_length=1)
    baseline_prompts: list[Text] = []
    cache_dir: str | None = None
    # -- additions --
    backend: Text = "open_clip"
    """``open_clip``, or ``transformers`` (vlmrm-transformers) for ``hf:org/repo`` CLIP, SigLIP,
    X-CLIP and LLaVA-style models; the model's kind decides how frames become rewards."""
    video_mode: Literal["episode", "window"] | None = None
    """Video models: ``episode`` (default; the whole episode's clip, rewarded at its last step) or
    ``window`` (each step scored on its last ``window_size`` frames)."""
    window_size: PositiveInt | None = None
    """Video models in ``window`` mode: frames per window (default 16)."""
    judge_reward: Literal["probability", "log_odds"] | None = None
    """Yes/no VLM judges: the probability of "yes" (default) or its log-odds."""
    devices: list[Text] | None = Field(default=None, min_length=1)
    """Devices that score frames, e.g. ``[cuda:1, cuda:2]``; default: every visible GPU, else the CPU."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    resize_mode: Literal["squash", "shortest", "longest", "model"] = "squash"
    """How a frame that is not square becomes the model's square input. ``squash`` (the paper's):
    resize ignoring the aspect ratio, the whole frame is seen. ``shortest``: crop the long side
    (a 600x400 frame loses its outer sixths: MountainCar's flag, CartPole's track ends).
    ``longest``: pad the short side. ``model``: the model's own preprocess config."""


class RLConfig(_Section):
    """``rl``: the RL algorithm. Step counts are env steps summed over all envs unless noted."""

    policy_name: Text = "MlpPolicy"
    n_steps: PositiveInt
    n_envs_per_worker: PositiveInt = 1
    episode_length: PositiveInt | None = None
    """Steps per episode; default: the env's registered limit."""
    learning_starts: NonNegativeInt | None = None
    train_freq: PositiveInt | None = None
    """Steps per env between training phases (stable-baselines3 meaning)."""
    batch_size: PositiveInt | None = None
    gradient_steps: Annotated[int, _Number, Field(ge=-1)] | None = None
    """Gradient steps per training phase; -1: as many as steps collected."""
    tau: Annotated[float, _Number, Field(gt=0.0, le=1.0)] | None = None
    gamma: Fraction | None = None
    learning_rate: Annotated[float, _Number, Field(gt=0.0, allow_inf_nan=False)] | None = None
    # -- additions --
    algorithm: Literal["auto", "sac", "td3", "tqc", "dqn", "qrdqn"] = "auto"
    """``auto``: sac for continuous (Box) actions, dqn for discrete ones."""
    n_workers: PositiveInt | None = None
    """Render workers (GPUs); there are n_workers * n_envs_per_worker envs. Default: the visible GPUs, or 1."""
    vec_env: Literal["auto", "dummy", "subproc"] = "auto"
    """``auto``: one process per env (subproc) when there are several envs."""
    buffer_size: PositiveInt | None = None
    async_reward: bool = False
    """Score ended episodes on a background thread while the envs step (training is identical);
    pays on a GPU with a ``train_freq`` whose gradient phases do not fall on episode ends."""
    device: Text = "auto"
    """Device of the policy and Q networks."""
    policy_kwargs: dict[str, Any] = {}
    algorithm_kwargs: dict[str, Any] = {}
    """Further constructor arguments of the algorithm, e.g. ``{ent_coef: 0.1}``."""

    @field_validator("gradient_steps")
    @classmethod
    def _gradient_steps_not_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("Input should be a positive integer, or -1 for as many as steps collected")
        return value


class LoggingConfig(_Section):
    """``logging``: how often (in env steps summed over all envs) to save and log; null turns one off."""

    checkpoint_freq: PositiveInt | None = 100_000
    video_freq: PositiveInt | None = 100_000
    tensorboard_freq: PositiveInt = 1_000
    # -- additions --
    replay_buffer_max_gb: Annotated[float, _Number, Field(ge=0.0)] | None = 4.0
    """Save the replay buffer with each checkpoint (only the latest is kept), so that a resumed run
    trains on it, while its allocated size is at most this many GB; 0: never, null: always."""
    video_fps: PositiveInt = 30
    eval_freq: PositiveInt | None = None
    """Evaluate the policy as ``vlmrm eval`` does every this many steps and log ``eval/success_rate``,
    ``eval/ground_truth_return``, ``eval/clip_return`` and ``eval/episode_length``; null: never."""
    eval_episodes: PositiveInt = 5
    """Deterministic episodes per evaluation (episode i reset with seed + i)."""


class RenderConfig(_Section):
    """``render``: frame size in pixels, for envs whose constructor takes one (MuJoCo and vlmrm envs).

    Default (null): the env's own size, for the vlmrm envs the paper's (CartPole and MountainCar
    600x400, Humanoid 480x480). Smaller frames are a speed setting: MuJoCo renders them faster,
    and every env sends less between processes; the classic-control envs draw the same picture
    and resize it.
    """

    width: Annotated[int, _Number, Field(ge=16)] | None = None
    height: Annotated[int, _Number, Field(ge=16)] | None = None


class WandbConfig(_Section):
    """``wandb``: ``auto`` logs online when ``WANDB_API_KEY`` is set, else offline into the run folder."""

    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: Text = "vlmrm"
    entity: str | None = None
    group: str | None = None
    """wandb run group; ``vlmrm sweep`` sets it to the sweep's name."""
    name: str | None = None
    """wandb run name; default: the run folder's name."""

    @field_validator("project")
    @classmethod
    def _project_name(cls, project: str) -> str:
        bad = sorted(set(project) & set("/\\#?%:"))
        if bad:  # wandb refuses these only once the run starts
            raise ValueError(f"a wandb project name cannot contain {' '.join(bad)}")
        return project


class Config(_Section):
    """A ``vlmrm train`` run."""

    env_name: Text
    """A ``vlmrm/...`` id, or any Gymnasium id that renders ``rgb_array`` (wrapped with the CLIP reward)."""
    base_path: Text = "runs"
    seed: Annotated[int, _Number, Field(ge=0, lt=2**32)] = 0
    description: str = ""
    tags: list[str] = []
    reward: RewardConfig
    rl: RLConfig
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # -- additions --
    render: RenderConfig = Field(default_factory=RenderConfig)
    env_kwargs: dict[str, Any] = {}
    """Passed to ``gym.make``, e.g. ``{camera: {...}}`` for ``vlmrm/Humanoid-v0``."""
    wandb: WandbConfig = Field(default_factory=WandbConfig)

    @model_validator(mode="before")
    @classmethod
    def _from_research_schema(cls, data: Any) -> Any:
        return _research_keys_moved(data)

    @field_validator("env_name")
    @classmethod
    def _registered(cls, env_name: str) -> str:
        import vlmrm_envs  # noqa: F401  (registers the vlmrm/ ids)

        env_name = RESEARCH_ENV_NAMES.get(env_name, env_name)

        if ":" in env_name:  # gym.make's "module:EnvId" form imports the module that registers it
            module, _, env_id = env_name.partition(":")
            _check_installed(module)  # imported when training starts, not while validating
            if module not in sys.modules:
                return env_name
        else:
            env_id = env_name
        if env_id not in gym.registry:
            close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else "; `vlmrm envs` lists the vlmrm ids"
            raise ValueError(f"{env_id!r} is not a registered Gymnasium env{hint}")
        return env_name

    @property
    def n_envs(self) -> int:
        """Envs in the vector env (after :func:`resolve_config`)."""
        return (self.rl.n_workers or 1) * self.rl.n_envs_per_worker


# -- reading ------------------------------------------------------------------------------------


# Bounds on what a config may hold, so that a small file cannot expand to gigabytes through YAML
# aliases ("billion laughs") or exhaust the parser's stack; real configs are far within them.
MAX_YAML_DEPTH = 50
MAX_YAML_VALUES = 100_000


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate and non-scalar keys, nesting deeper than
    :data:`MAX_YAML_DEPTH` and documents that expand (aliases counted at each use) to more than
    :data:`MAX_YAML_VALUES` values, and reads ``3e-4`` as a float (YAML 1.2)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        sizes: dict[int, int] = {}

        def expanded_size(node: yaml.Node) -> int:
            if id(node) not in sizes:  # an alias shares its anchor's node: sized once, counted per use
                if isinstance(node, yaml.MappingNode):
                    children = [child for pair in node.value for child in pair]
                else:
                    children = node.value if isinstance(node, yaml.SequenceNode) else []
                sizes[id(node)] = 1 + sum(expanded_size(child) for child in children)
                if sizes[id(node)] > MAX_YAML_VALUES:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"expands to more than {MAX_YAML_VALUES} values (YAML aliases)",
                        node.start_mark,
                    )
            return sizes[id(node)]

        expanded_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain name, not a list or a mapping", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads an exponent without a dot, as in the research code's `3e-4`, as a string.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str = "config") -> Any:
    """Parse YAML safely; raises :class:`ConfigError` with the line and column of a syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        detail = f"{context}, {problem}" if context and problem != context else problem
        raise ConfigError(f"{source}{where}: malformed YAML: {' '.join(detail.split())}") from None


def read_config_source(source: str) -> tuple[dict[str, Any], str]:
    """Read a config from a YAML file path or from YAML text; returns (mapping, where from).

    Text is told apart from a path by being YAML that parses to a mapping (``vlmrm train
    "$(cat config.yaml)"``); anything else must be an existing file.
    """
    path = Path(source)
    is_file = "\n" not in source and len(source) < 4096 and path.is_file()
    if is_file:
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read the config ({error})") from None
    elif ":" in source or "\n" in source:
        text, where = source, "config text"
    else:
        raise ConfigError(f"{source}: no such config file (give a YAML file path or YAML text)")
    data = parse_yaml(text, where)
    if data is None:
        raise ConfigError(f"{where}: the config is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a config must be a YAML mapping of keys, got {type(data).__name__}")
    return data, where


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (value read as YAML) to a copy of ``data``."""
    data = yaml.load(yaml.safe_dump(data), Loader=_Loader)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not all(key.strip().split(".")):
            raise ConfigError(f"--set {override!r}: expected KEY.PATH=VALUE, e.g. rl.n_steps=1000")
        set_key(data, key, parse_yaml(raw, f"--set {key}") if raw.strip() else None)
    return data


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data``'s ``key.path`` to ``value`` in place, making missing sections on the way."""
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"{key!r}: expected a key path such as rl.n_steps")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            section = ".".join(parts[: depth + 1])
            raise ConfigError(f"{key}: {section} is a value, not a section with keys")
        node = child
    node[parts[-1]] = value


def validate_config(data: dict[str, Any]) -> Config:
    """Validate a config mapping; raises :class:`ConfigError` naming each bad key."""
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        messages = [_describe(item) for item in error.errors(include_url=False)]
        raise ConfigError("; ".join(dict.fromkeys(messages))) from None


def load_config(
    source: str, overrides: Sequence[str] = (), notify: Callable[[str], None] | None = None
) -> Config:
    """Read (file path or YAML text), override (``["rl.n_steps=1000"]``) and validate a config.

    ``notify`` receives one line for each setting read differently from how it is written
    (a research-code env name, see :data:`RESEARCH_ENV_NAMES`).
    """
    data, _ = read_config_source(source)
    data = apply_overrides(data, overrides)
    config = validate_config(data)
    notice = research_env_notice(data.get("env_name"))
    if notice is not None and notify is not None:
        notify(notice)
    return config


def dump_config(config: Config) -> str:
    """The config as YAML, every key in schema order, defaults included."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)


# -- error messages -----------------------------------------------------------------------------


def _key_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        name = str(part) if str(part).isprintable() else repr(part)  # keeps the message on one line
        path += f".{name}" if path else name
    return path


def _schema_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        yield (*prefix, name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _schema_paths(field.annotation, (*prefix, name))


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = _key_path(loc) or "config"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key{_did_you_mean(loc)}"
    if kind == "missing":
        return f"{path}: required key is missing"
    message = error["msg"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "should be a section of keys"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return f"{path}: {message}"


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    key, parent = str(loc[-1]), tuple(str(part) for part in loc[:-1])
    paths = list(_schema_paths(Config))
    siblings = [path[-1] for path in paths if path[:-1] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {'.'.join((*parent, close[0]))!r}?"
    # The right key in another section, e.g. `n_steps` at the top level.
    elsewhere = [path for path in paths if difflib.get_close_matches(key, [path[-1]], n=1, cutoff=0.8)]
    if elsewhere:
        return f"; did you mean {'.'.join(elsewhere[0])!r}?"
    if siblings:
        return f"; valid keys here: {', '.join(siblings)}"
    return ""


# -- resolving what depends on the env ----------------------------------------------------------


# Constructor arguments that vlmrm itself passes.
_SET_BY_VLMRM = ("policy", "env", "reward_model", "verbose", "tensorboard_log", "_init_setup_model")


def resolve_config(config: Config, action_space: gym.Space, episode_length: int | None) -> Config:
    """Fill in what the env decides: the algorithm, its defaults, ``n_workers``, ``episode_length``.

    Args:
        action_space: the env's (single, not vectorised) action space.
        episode_length: the env's registered episode length (None: unlimited).

    Raises:
        ConfigError: the algorithm does not fit the action space, or ``policy_name``,
            ``algorithm_kwargs`` or ``policy_kwargs`` do not fit the algorithm.
    """
    rl = config.rl
    space = type(action_space).__name__
    if space not in ("Box", "Discrete"):
        raise ConfigError(
            f"env_name: {config.env_name} has a {space} action space; vlmrm trains Box or Discrete"
        )
    algorithm = rl.algorithm
    if algorithm == "auto":
        algorithm = "sac" if space == "Box" else "dqn"
    elif ALGORITHMS[algorithm] != space:
        fitting = ", ".join(name for name, needs in ALGORITHMS.items() if needs == space)
        raise ConfigError(
            f"rl.algorithm: {algorithm} needs a {ALGORITHMS[algorithm]} action space, but {config.env_name} "
            f"has {action_space}; use one of {fitting}"
        )
    info = ALGORITHM_INFO[algorithm]
    if rl.policy_name not in info.policies:
        choices = ", ".join(info.policies)
        raise ConfigError(
            f"rl.policy_name: {algorithm} has no policy {rl.policy_name!r}; choose from {choices}"
        )
    settable = {name for name in info.arguments if name not in _SET_BY_VLMRM}
    for key in rl.algorithm_kwargs:
        if key in ALGORITHM_ARGUMENTS or key in ("policy_kwargs", "device", "seed", "async_reward"):
            raise ConfigError(
                f"rl.algorithm_kwargs.{key}: set {'seed' if key == 'seed' else 'rl.' + key} instead"
            )
        if key not in settable:
            close = difflib.get_close_matches(key, sorted(settable), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"rl.algorithm_kwargs.{key}: {info.class_name} takes no such argument{hint}")
    update: dict[str, Any] = {"algorithm": algorithm}
    for key in ALGORITHM_ARGUMENTS:
        if getattr(rl, key) is None and key in info.defaults:
            update[key] = info.defaults[key]
    if rl.n_workers is None:
        from vlmrm_envs.rendering import visible_render_devices

        update["n_workers"] = max(1, len(visible_render_devices()))
    if rl.episode_length is None:
        update["episode_length"] = episode_length
    return config.model_copy(update={"rl": rl.model_copy(update=update)})

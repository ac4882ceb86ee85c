"""What each algorithm's constructor and policies take, known without importing SB3 (and torch).

Checking a config (``vlmrm config show``, ``load_config``) fills in the algorithm's defaults and
refuses arguments the algorithm or its policy does not take; these tables let it do so in a
fraction of a second. :func:`introspect` reads the same facts from the installed ``vlmrm_sb3``
classes, and a test checks that the tables equal them, so that they follow the SB3 versions
that vlmrm-sb3 allows.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmrm_sb3 import EpisodeRewardMixin

__all__ = ["ALGORITHM_INFO", "AlgorithmInfo", "PolicyInfo", "algorithm_class", "introspect"]


@dataclass(frozen=True)
class PolicyInfo:
    """A policy alias's class name, and the keyword arguments it takes (None: any, ``**kwargs``)."""

    class_name: str
    arguments: frozenset[str] | None


@dataclass(frozen=True)
class AlgorithmInfo:
    """One ``vlmrm_sb3`` algorithm, as a config check needs it."""

    class_name: str
    defaults: dict[str, Any]
    """The constructor's defaults of the arguments that are ``rl`` keys (``rl.batch_size``, ...)."""
    arguments: frozenset[str]
    """Every keyword argument of the constructor, through ``**kwargs`` up to SB3's base classes."""
    policies: dict[str, PolicyInfo]
    """``policy_aliases``: policy name (``"MlpPolicy"``, ...) -> what it takes."""


_OFF_POLICY = frozenset(
    {
        "_init_setup_model",
        "async_reward",
        "batch_size",
        "buffer_size",
        "device",
        "env",
        "gamma",
        "gradient_steps",
        "learning_rate",
        "learning_starts",
        "n_steps",
        "optimize_memory_usage",
        "policy",
        "policy_kwargs",
        "replay_buffer_class",
        "replay_buffer_kwargs",
        "reward_batch_size",
        "reward_model",
        "seed",
        "stats_window_size",
        "tau",
        "tensorboard_log",
        "train_freq",
        "verbose",
    }
)
_SAC = _OFF_POLICY | {
    "action_noise",
    "ent_coef",
    "sde_sample_freq",
    "target_entropy",
    "target_update_interval",
    "use_sde",
    "use_sde_at_warmup",
}
_TD3 = _OFF_POLICY | {"action_noise", "policy_delay", "target_noise_clip", "target_policy_noise"}
_DQN = _OFF_POLICY | {
    "exploration_final_eps",
    "exploration_fraction",
    "exploration_initial_eps",
    "max_grad_norm",
    "target_update_interval",
}

_POLICY = frozenset(
    {
        "activation_fn",
        "features_extractor_class",
        "features_extractor_kwargs",
        "net_arch",
        "normalize_images",
        "optimizer_class",
        "optimizer_kwargs",
    }
)
_TD3_POLICY = _POLICY | {"n_critics", "share_features_extractor"}
_SAC_POLICY = _TD3_POLICY | {"clip_mean", "log_std_init", "use_expln", "use_sde"}


def _policies(mlp_class_name: str, arguments: frozenset[str]) -> dict[str, PolicyInfo]:
    return {
        "MlpPolicy": PolicyInfo(mlp_class_name, arguments),
        "CnnPolicy": PolicyInfo("CnnPolicy", arguments),
        "MultiInputPolicy": PolicyInfo("MultiInputPolicy", arguments),
    }


_OFF_POLICY_DEFAULTS = {"learning_starts": 100, "gradient_steps": 1, "gamma": 0.99, "buffer_size": 1_000_000}
_ACTOR_CRITIC_DEFAULTS = {**_OFF_POLICY_DEFAULTS, "train_freq": 1, "batch_size": 256, "tau": 0.005}
_Q_DEFAULTS = {**_OFF_POLICY_DEFAULTS, "train_freq": 4, "batch_size": 32, "tau": 1.0}

ALGORITHM_INFO: dict[str, AlgorithmInfo] = {
    "sac": AlgorithmInfo(
        "SAC", {**_ACTOR_CRITIC_DEFAULTS, "learning_rate": 3e-4}, _SAC, _policies("SACPolicy", _SAC_POLICY)
    ),
    "td3": AlgorithmInfo(
        "TD3", {**_ACTOR_CRITIC_DEFAULTS, "learning_rate": 1e-3}, _TD3, _policies("TD3Policy", _TD3_POLICY)
    ),
    "tqc": AlgorithmInfo(
        "TQC",
        {**_ACTOR_CRITIC_DEFAULTS, "learning_rate": 3e-4},
        _SAC | {"top_quantiles_to_drop_per_net"},
        _policies("TQCPolicy", _SAC_POLICY | {"n_quantiles"}),
    ),
    "dqn": AlgorithmInfo(
        "DQN", {**_Q_DEFAULTS, "learning_rate": 1e-4}, _DQN, _policies("DQNPolicy", _POLICY)
    ),
    "qrdqn": AlgorithmInfo(
        "QRDQN",
        {**_Q_DEFAULTS, "learning_rate": 5e-5},
        _DQN,
        _policies("QRDQNPolicy", _POLICY | {"n_quantiles"}),
    ),
}
"""Algorithm name (an ``rl.algorithm`` value) -> what its ``vlmrm_sb3`` class takes."""


def algorithm_class(name: str) -> type[EpisodeRewardMixin]:
    """The ``vlmrm_sb3`` class for an algorithm name (``"sac"``, ...); imports SB3 and torch."""
    import vlmrm_sb3

    return getattr(vlmrm_sb3, ALGORITHM_INFO[name].class_name)


def _constructor_defaults(cls: type) -> dict[str, Any]:
    """Every keyword argument of ``cls``'s constructor with its default, following ``**kwargs`` up the MRO."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        for parameter in parameters:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                defaults.setdefault(parameter.name, parameter.default)
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
            break
    defaults.pop("self", None)
    return defaults


def introspect(name: str, rl_keys: tuple[str, ...]) -> AlgorithmInfo:
    """What the installed ``vlmrm_sb3`` class of algorithm ``name`` takes, read from its signatures
    (``rl_keys``: the constructor arguments whose defaults to report); imports SB3 and torch."""
    cls = algorithm_class(name)
    defaults = _constructor_defaults(cls)
    policies = {}
    for alias, policy in cls.policy_aliases.items():
        parameters = inspect.signature(policy.__init__).parameters
        takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())
        arguments = frozenset(parameters) - {"self", "observation_space", "action_space", "lr_schedule"}
        policies[alias] = PolicyInfo(policy.__name__, None if takes_any else arguments)
    return AlgorithmInfo(
        class_name=cls.__name__,
        defaults={key: defaults[key] for key in rl_keys if key in defaults},
        arguments=frozenset(defaults),
        policies=policies,
    )

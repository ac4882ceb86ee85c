from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import vlmrm_envs  # noqa: F401  (registers the ids)
from stable_baselines3 import DQN
from vlmrm_envs.success import (
    cartpole_balanced,
    criterion_for,
    episode_success,
    humanoid_kneeling,
    mountain_car_at_flag,
    step_success,
)

DEG = math.pi / 180


@pytest.mark.parametrize(
    ("x", "theta", "balanced"),
    [
        (0.0, 0.0, True),
        (2.39, 11.9 * DEG, True),
        (-2.39, -11.9 * DEG, True),
        (0.0, 12.1 * DEG, False),
        (0.0, -12.1 * DEG, False),
        (2.4, 0.0, False),  # at the track's end stop: out
        (-2.41, 0.0, False),
        (0.0, 90 * DEG, False),
    ],
)
def test_cartpole_balanced_on_hand_set_states(x, theta, balanced):
    assert cartpole_balanced([x, 0.3, theta, -0.2]) is balanced
    env = gym.make("vlmrm/CartPole-v0", render_mode=None)
    env.reset(seed=0)
    env.unwrapped.state = np.array([x, 0.0, theta, 0.0])
    assert step_success(env) is balanced


@pytest.mark.parametrize(("position", "at_flag"), [(0.45, True), (0.6, True), (0.449, False), (-0.5, False)])
def test_mountain_car_at_flag_on_hand_set_states(position, at_flag):
    assert mountain_car_at_flag([position, -0.01]) is at_flag
    env = gym.make("vlmrm/MountainCarContinuous-v0", render_mode=None)
    env.reset(seed=0)
    env.unwrapped.state = np.array([position, 0.0])
    assert step_success(env) is at_flag


def test_cartpole_episode_succeeds_only_if_every_step_was_balanced_and_info_says_so():
    env = gym.make("vlmrm/CartPole-v0", render_mode=None)
    for _ in range(2):  # the second episode starts afresh
        env.reset(seed=0)
        flags, infos = [], []
        for state in ([0, 0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0]):  # balanced, fallen, balanced again
            env.unwrapped.state = np.array(state, dtype=np.float64)
            _, reward, _, _, info = env.step(0)
            flags.append(step_success(env))
            infos.append(info["is_success"])
            assert reward == float(flags[-1])
        assert flags == [True, False, True]
        assert infos == [True, False, False]
        assert episode_success(flags, "vlmrm/CartPole-v0") is False
        assert episode_success(flags[:1], "vlmrm/CartPole-CLIP-v0") is True


def test_mountain_car_episode_succeeds_once_the_flag_is_reached_and_info_says_so():
    env = gym.make("vlmrm/MountainCarContinuous-v0", render_mode=None)
    for _ in range(2):  # the second episode starts afresh
        env.reset(seed=0)
        flags, infos = [], []
        for position in (-0.5, 0.5, -0.5):  # before the flag, at it, then (held there) pushed back
            env.unwrapped.state = np.array([position, 0.0])
            _, _, _, _, info = env.step(np.zeros(1, dtype=np.float32))
            flags.append(step_success(env))
            infos.append(info["is_success"])
        assert flags == [False, True, True]
        assert infos == [False, True, True]
    # Any step at the flag makes the episode a success, even one the car left (a stock MountainCar).
    assert episode_success([False, True, False], "vlmrm/MountainCarContinuous-v0") is True
    assert episode_success([False, False], "MountainCarContinuous-v0") is False


# pose -> knee and hip flexion of both legs, degrees
POSES = {"standing": (0, 0), "kneeling": (-90, 0), "on_heels": (-150, -10), "sitting": (-2, -90)}


def _humanoid(pose: str, *, upside: str = "up") -> gym.Env:
    """vlmrm/Humanoid-v0 set by hand into a pose, its lowest knee or foot 7 cm above the ground."""
    env = gym.make("vlmrm/Humanoid-v0", render_mode=None)
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    knee, hip = POSES[pose]
    qpos = np.zeros(model.nq)
    qpos[3] = 1.0  # upright (quaternion w, x, y, z)
    if upside == "on_back":
        qpos[3:7] = [math.cos(math.pi / 4), 0.0, -math.sin(math.pi / 4), 0.0]  # turned 90 degrees about y
    for side in ("right", "left"):
        qpos[model.joint(f"{side}_knee").qposadr[0]] = knee * DEG
        qpos[model.joint(f"{side}_hip_y").qposadr[0]] = hip * DEG
    qpos[2] = 1.4
    data.qpos[:], data.qvel[:] = qpos, 0.0
    mujoco.mj_kinematics(model, data)
    lowest = min(data.body(name).xpos[2] for name in ("right_shin", "left_shin", "right_foot", "left_foot"))
    data.qpos[2] += 0.07 - lowest
    return env


@pytest.mark.parametrize(
    ("pose", "upside", "kneeling"),
    [
        ("kneeling", "up", True),
        ("on_heels", "up", True),
        ("standing", "up", False),
        ("sitting", "up", False),  # knees on the ground, but the hip is as low as they are
        ("kneeling", "on_back", False),  # lying: the torso is not upright
    ],
)
def test_humanoid_kneeling_on_hand_set_poses(pose, upside, kneeling):
    env = _humanoid(pose, upside=upside)
    assert humanoid_kneeling(env.unwrapped.model, env.unwrapped.data) is kneeling
    assert step_success(env) is kneeling


def test_humanoid_reports_kneeling_in_info_and_an_episode_counts_its_last_step():
    env = _humanoid("kneeling")
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert info["is_success"] is True and step_success(env)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert info["is_success"] is False  # standing after reset
    assert episode_success([False, True], "vlmrm/Humanoid-v0") is True
    assert episode_success([True, False], "vlmrm/Humanoid-CLIP-v0") is False
    assert episode_success([], "vlmrm/Humanoid-v0") is False


@pytest.mark.parametrize(
    ("env_id", "name"),
    [
        ("vlmrm/CartPole-CLIP-v0", "cartpole_balanced"),
        ("CartPole-v1", "cartpole_balanced"),
        ("vlmrm_envs:vlmrm/MountainCarContinuous-v0", "mountain_car_reached_flag"),
        ("MountainCar-v0", "mountain_car_reached_flag"),
        ("Humanoid-v4", "humanoid_kneeling"),
        ("vlmrm/Humanoid-CLIP-v0", "humanoid_kneeling"),
        ("Pendulum-v1", None),
    ],
)
def test_criterion_is_found_by_id_and_by_env(env_id, name):
    criterion = criterion_for(env_id)
    assert (criterion and criterion.name) == name
    if criterion is not None:
        assert criterion.proxy is (name == "humanoid_kneeling")


def test_an_env_without_a_criterion_is_refused_in_one_line():
    env = gym.make("Pendulum-v1")
    env.reset(seed=0)
    assert criterion_for(env) is None
    with pytest.raises(ValueError, match=r"Pendulum.* has no ground-truth success criterion"):
        step_success(env)
    with pytest.raises(ValueError, match="Pendulum-v1 has no ground-truth success criterion"):
        episode_success([True], "Pendulum-v1")


def test_sb3_reads_the_episode_success_at_each_episode_end():
    # SB3 keeps info["is_success"] of each episode's last step: here every 5-step episode of
    # CartPole is balanced throughout from Gymnasium's near-upright start.
    env = gym.make("vlmrm/CartPole-v0", render_mode=None, max_episode_steps=5)
    model = DQN("MlpPolicy", env, learning_starts=1000, seed=0, device="cpu")
    model.learn(total_timesteps=20)
    assert list(model.ep_success_buffer) == [True] * 4

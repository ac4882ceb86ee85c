from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import vlmrm_envs
from conftest import BASE_IDS, CLIP_IDS, PROMPTS, SIZE, make_kwargs
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env


def test_list_envs_has_every_paper_task_and_its_base_env():
    assert vlmrm_envs.list_envs() == sorted(BASE_IDS + CLIP_IDS)


def test_module_prefixed_id_registers_without_import():
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('vlmrm_envs:vlmrm/CartPole-v0', width=32, height=32)\n"
        "env.reset(seed=0)\n"
        "assert env.render().shape == (32, 32, 3)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _heavy_modules_imported_by(code: str) -> str:
    """Run ``code`` in a fresh interpreter; the heavy modules it left imported, as a printed list."""
    heavy = "{'torch', 'mujoco', 'open_clip', 'stable_baselines3'}"
    script = f"import sys\n{code}\nprint(sorted({heavy} & set(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_registering_and_making_a_classic_env_imports_neither_torch_nor_mujoco():
    # Checking a config registers the ids and probes the env: neither needs torch or MuJoCo.
    code = (
        "import vlmrm_envs\n"
        "env = vlmrm_envs.make_clip_env('vlmrm/CartPole-CLIP-v0', defer_reward=True, width=32, height=32)\n"
        "env.reset(seed=0)\n"
        "assert env.render().shape == (32, 32, 3)"
    )
    assert _heavy_modules_imported_by(code) == "[]"


@pytest.mark.parametrize("env_id", BASE_IDS + CLIP_IDS)
def test_every_id_makes_steps_and_renders_a_scene(env_id, tiny_model_spec):
    env = gym.make(env_id, **make_kwargs(env_id, tiny_model_spec))
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and not truncated
        assert np.isfinite(float(reward))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    # Not blank: several distinct colours with real contrast (sky, ground, the body).
    assert frame.std() > 10 and len(np.unique(frame.reshape(-1, 3), axis=0)) > 20
    if "CLIP" in env_id:
        np.testing.assert_array_equal(info["frame"], frame)
        assert -1.0 <= reward <= 1.0 and reward != 0.0
        assert "original_reward" in info
    env.close()


@pytest.mark.parametrize("env_id", CLIP_IDS)
def test_clip_reward_is_the_reward_model_of_the_frame_after_the_step(env_id, reward_model):
    env = vlmrm_envs.make_clip_env(env_id, reward_model=reward_model, prompts=PROMPTS, **SIZE)
    base = gym.make(env_id.replace("-CLIP", ""), **SIZE)
    env.reset(seed=3)
    base.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(4):
        action = env.action_space.sample()
        _, reward, _, _, info = env.step(action)
        _, base_reward, _, _, _ = base.step(action)
        assert reward == pytest.approx(float(reward_model(info["frame"])[0]), abs=1e-6)
        assert info["original_reward"] == base_reward
        np.testing.assert_array_equal(info["frame"], base.render())


def test_defer_reward_returns_zero_and_the_frame_without_loading_a_model():
    env = gym.make("vlmrm/CartPole-CLIP-v0", defer_reward=True, **SIZE)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)
    assert reward == 0.0
    assert info["frame"].shape == (64, 64, 3) and info["original_reward"] == 1.0


@pytest.mark.parametrize("env_id", ["Reacher-v5", "vlmrm_envs:vlmrm/CartPole-v0"])
def test_make_clip_env_wraps_any_rgb_array_env(env_id, reward_model):
    # Any id gym.make takes, its "module:EnvId" form included; the frame size reaches the env.
    env = vlmrm_envs.make_clip_env(env_id, reward_model=reward_model, episode_length=5, width=48, height=40)
    env.reset(seed=0)
    truncations = []
    for _ in range(5):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(float(reward_model(info["frame"])[0]), abs=1e-6)
        assert info["frame"].shape == (40, 48, 3)
        assert not terminated
        truncations.append(truncated)
    assert truncations == [False] * 4 + [True]
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "x", "reward_model": lambda frames: frames}, ValueError, "leave out model"),
        ({"prompts": None}, ValueError, "prompts is required"),
        ({"prompts": "a robot"}, TypeError, "single string"),
        ({"render_mode": "human"}, ValueError, "render_mode"),
        ({"episode_length": 0}, ValueError, "episode_length"),
        ({"defer_reward": True, "model": "x"}, ValueError, "leave out model"),
    ],
)
def test_make_clip_env_rejects_bad_arguments(kwargs, error, match, tiny_model_spec):
    arguments = {"prompts": PROMPTS, "model": tiny_model_spec, "device": "cpu", **kwargs}
    if "reward_model" in kwargs:
        arguments.pop("device")
    with pytest.raises(error, match=match):
        vlmrm_envs.make_clip_env("vlmrm/CartPole-v0", **arguments)


def test_prompts_must_match_a_shared_reward_model(reward_model):
    with pytest.raises(ValueError, match=r"differ from reward_model\.target_prompts"):
        vlmrm_envs.make_clip_env(
            "vlmrm/Humanoid-CLIP-v0", reward_model=reward_model, prompts=["a robot doing splits"]
        )


def test_registered_clip_envs_take_a_model_spec_not_a_loaded_model(reward_model):
    with pytest.raises(TypeError, match="take the model as a spec"):
        gym.make("vlmrm/CartPole-CLIP-v0", reward_model=reward_model)


def test_envs_with_the_same_spec_share_one_model_loaded_on_reset_and_freed_on_last_close(tiny_model_spec):
    kwargs = make_kwargs("vlmrm/CartPole-CLIP-v0", tiny_model_spec)
    first, second = (gym.make("vlmrm/CartPole-CLIP-v0", **kwargs) for _ in range(2))
    other = gym.make("vlmrm/CartPole-CLIP-v0", **{**kwargs, "prompts": ["a cart"]})
    scorers = [env.get_wrapper_attr("reward_model") for env in (first, second, other)]
    assert not any(scorer.loaded for scorer in scorers)  # making an env runs no torch
    for env in (first, second, other):
        env.reset(seed=0)
    models = [scorer.load() for scorer in scorers]
    assert models[0] is models[1] and models[2] is not models[0]
    first.close()
    _, reward, _, _, info = second.step(0)  # still loaded for the other user
    assert reward == pytest.approx(float(models[0](info["frame"])[0]), abs=1e-6)
    second.close()
    with pytest.raises(RuntimeError, match="closed"):
        models[0](info["frame"])
    other.close()


def test_humanoid_never_terminates_and_episodes_last_100_steps():
    env = gym.make("vlmrm/Humanoid-v0", render_mode=None)
    env.reset(seed=0)
    env.action_space.seed(0)
    lengths, steps = [], 0
    for _ in range(150):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        assert not terminated
        if truncated:
            lengths.append(steps)
            steps = 0
            env.reset()
    assert lengths == [100]
    # It fell (torso below Humanoid-v5's healthy range) and the episode went on.
    assert env.unwrapped.data.qpos[2] < 1.0


def test_cartpole_pole_swings_freely_and_the_cart_stops_at_the_track_end():
    env = gym.make("vlmrm/CartPole-v0", render_mode=None)
    observation, _ = env.reset(seed=0)
    rewards, truncations, angles = [], [], []
    for _ in range(200):
        observation, reward, terminated, truncated, info = env.step(1)
        rewards.append(reward)
        truncations.append(truncated)
        angles.append(observation[2])
        assert not terminated and env.observation_space.contains(observation)
    assert truncations == [False] * 199 + [True]
    assert abs(observation[0]) == pytest.approx(2.4)
    # The pole fell past the horizontal and kept swinging: its angle wraps around at +-pi.
    assert max(np.abs(angles)) > np.pi / 2
    assert rewards[0] == 1.0 and rewards[-1] == 0.0 and not info["is_success"]


def test_cartpole_frames_are_gymnasiums_own_pixel_for_pixel():
    ours = gym.make("vlmrm/CartPole-v0")
    stock = gym.make("CartPole-v1", render_mode="rgb_array")
    ours.reset(seed=0)
    stock.reset(seed=0)
    for state in [(0.0, 0.0, 0.0, 0.0), (1.3, 0.5, 0.2, -1.0), (-2.4, 0.0, -1.5, 0.0), (0.7, 0.0, 3.0, 0.0)]:
        ours.unwrapped.state = stock.unwrapped.state = np.array(state)
        frame = ours.render()
        assert frame.shape == (400, 600, 3)
        np.testing.assert_array_equal(frame, stock.render())


def test_cartpole_smaller_frames_are_the_same_picture_averaged():
    env = gym.make("vlmrm/CartPole-v0")
    half = gym.make("vlmrm/CartPole-v0", width=300, height=200)
    for e in (env, half):
        e.reset(seed=1)
        e.unwrapped.state = np.array([0.5, 0.0, 0.3, 0.0])
    averaged = env.render().reshape(200, 2, 300, 2, 3).mean(axis=(1, 3))
    assert np.abs(half.render().astype(float) - averaged).max() <= 1.0


@pytest.mark.parametrize(
    ("env_id", "shape"),
    [
        ("vlmrm/CartPole-v0", (400, 600, 3)),
        ("vlmrm/MountainCarContinuous-v0", (400, 600, 3)),
        ("vlmrm/Humanoid-v0", (480, 480, 3)),
    ],
)
def test_frames_default_to_the_paper_sizes(env_id, shape):
    env = gym.make(env_id)
    env.reset(seed=0)
    assert env.render().shape == shape
    env.close()


def test_mountain_car_is_held_at_the_flag_once_it_reaches_it():
    env = gym.make("vlmrm/MountainCarContinuous-v0", render_mode=None)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.0], dtype=np.float32))
    assert not info["is_success"]
    env.unwrapped.state = np.array([0.44, 0.05])
    rewards = []
    for action in (1.0, -1.0, -1.0):
        observation, reward, terminated, _, info = env.step(np.array([action], dtype=np.float32))
        assert not terminated and info["is_success"]
        np.testing.assert_allclose(observation, [0.45, 0.0])
        rewards.append(reward)
    # Gymnasium's reward for the step that reaches the flag (which ends its episode), then nothing.
    assert rewards == [pytest.approx(100.0 - 0.1), 0.0, 0.0]
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.0], dtype=np.float32))
    assert not info["is_success"]  # a new episode starts away from the flag


def test_mountain_car_return_is_gymnasiums_for_the_same_actions():
    """Gymnasium's episode ends at the flag; the held steps after it pay nothing here."""

    def episode(env_id: str) -> tuple[float, int]:
        env = gym.make(env_id, render_mode=None)
        observation, _ = env.reset(seed=3)
        total, steps, done = 0.0, 0, False
        while not done:
            # Push along the velocity: reaches the flag in about a hundred steps.
            action = np.array([0.9 if observation[1] >= 0 else -0.9], dtype=np.float32)
            observation, reward, terminated, truncated, _ = env.step(action)
            total, steps, done = total + reward, steps + 1, terminated or truncated
        env.close()
        return total, steps

    gymnasium_return, gymnasium_steps = episode("MountainCarContinuous-v0")
    vlmrm_return, vlmrm_steps = episode("vlmrm/MountainCarContinuous-v0")
    assert gymnasium_steps < 999 and vlmrm_steps == 999  # Gymnasium's ended at the flag; ours held on
    assert vlmrm_return == pytest.approx(gymnasium_return) and gymnasium_return > 90


@pytest.mark.parametrize("env_id", BASE_IDS + CLIP_IDS)
def test_env_checkers_pass(env_id, tiny_model_spec):
    env = gym.make(env_id, **make_kwargs(env_id, tiny_model_spec))
    # The render check makes every listed render mode, and Humanoid's "human" needs a display.
    check_env(env.unwrapped if "CLIP" not in env_id else env, skip_render_check=env_id == "vlmrm/Humanoid-v0")
    sb3_check_env(env, warn=False)
    env.close()


@pytest.mark.parametrize("env_id", CLIP_IDS)
def test_seeded_runs_are_identical(env_id, reward_model):
    def rollout():
        env = vlmrm_envs.make_clip_env(env_id, reward_model=reward_model, **SIZE)
        observations, _ = env.reset(seed=7)
        env.action_space.seed(7)
        trace = [observations]
        for _ in range(5):
            observation, reward, _, _, info = env.step(env.action_space.sample())
            trace += [observation, reward, info["frame"]]
        env.close()
        return trace

    for first, second in zip(rollout(), rollout(), strict=True):
        np.testing.assert_array_equal(first, second)


def test_humanoid_camera_and_texture_options_change_the_frame():
    frames = {}
    for name, kwargs in {
        "paper": {},
        "far": {"camera": {"distance": 8.0}},
        "stock": {"textured": False},
    }.items():
        env = gym.make("vlmrm/Humanoid-v0", **SIZE, **kwargs)
        env.reset(seed=0)
        frames[name] = env.render().astype(int)
        env.close()
    assert np.abs(frames["paper"] - frames["far"]).mean() > 2
    assert np.abs(frames["paper"] - frames["stock"]).mean() > 20
    # The textured scene has a blue sky at the top; the stock skybox is grey-black.
    sky = frames["paper"][:8].reshape(-1, 3).mean(axis=0)
    assert sky[2] > sky[0] + 40


def test_humanoid_rejects_unknown_camera_settings():
    with pytest.raises(ValueError, match="unknown setting"):
        gym.make("vlmrm/Humanoid-v0", camera={"zoom": 2})


def _humanoid_frame(**kwargs):
    env = gym.make("vlmrm/Humanoid-v0", **SIZE, **kwargs)
    env.reset(seed=0)
    frame = env.render().astype(int)
    env.close()
    return frame


def test_humanoid_scene_looks_like_the_research_codes():
    frame = _humanoid_frame()
    # Sky: blue with white clouds; floor: dark grey stone (bottom rows); robot: light metal (centre).
    sky, floor = frame[:12].reshape(-1, 3), frame[-10:].reshape(-1, 3)
    assert sky[:, 2].mean() > sky[:, 0].mean() + 25
    assert floor.mean() < 110 and np.abs(floor[:, 0] - floor[:, 1]).mean() < 8
    assert frame[28:44, 28:36].max() > 170


def test_texture_dir_images_replace_the_generated_ones(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), (200, 30, 30), np.uint8)).save(tmp_path / "tiles.png")
    floor = _humanoid_frame(texture_dir=str(tmp_path))[-10:].reshape(-1, 3)
    assert floor[:, 0].mean() > floor[:, 1].mean() + 30  # the red floor is used unchanged


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda path: None, "holds none of sky.png, tiles.png, robot.png"),
        (lambda path: (path / "sky.png").write_text("not an image"), "is not a PNG"),
        (lambda path: path.rmdir(), "is not a folder"),
    ],
)
def test_texture_dir_refuses_what_it_cannot_use(tmp_path, setup, match):
    folder = tmp_path / "textures"
    folder.mkdir()
    setup(folder)
    with pytest.raises(ValueError, match=match):
        gym.make("vlmrm/Humanoid-v0", texture_dir=str(folder))


def _time_limit(env: gym.Env) -> int | None:
    while not isinstance(env, gym.wrappers.TimeLimit):
        if not isinstance(env, gym.Wrapper):
            return None
        env = env.env
    return env._max_episode_steps


@pytest.mark.parametrize("env_id", BASE_IDS + CLIP_IDS)
def test_known_spaces_are_the_made_envs_and_cover_every_mujoco_id(env_id):
    # The table can never drift from the envs: every MuJoCo id has an entry, equal to the made env.
    env = vlmrm_envs.make_clip_env(env_id, defer_reward=True, **SIZE)
    known = vlmrm_envs.known_spaces(env_id, defer_reward=True, **SIZE)
    if isinstance(env.unwrapped, MujocoEnv):
        assert known == (env.observation_space, env.action_space, _time_limit(env))
    else:
        assert known is None  # cheap to make: no table
    env.close()


def test_known_spaces_follow_the_arguments_that_keep_them_and_give_up_on_the_others():
    neutral = {"textured": False, "frame_skip": 3, "camera": {"distance": 4.0}, "episode_length": 7}
    env = vlmrm_envs.make_clip_env("vlmrm/Humanoid-v0", defer_reward=True, **SIZE, **neutral)
    known = vlmrm_envs.known_spaces("vlmrm/Humanoid-v0", **SIZE, **neutral)
    assert known == (env.observation_space, env.action_space, 7) and _time_limit(env) == 7
    env.close()
    # An observation switch changes the space (x and y come back): the table does not guess.
    switch = {"exclude_current_positions_from_observation": False}
    env = gym.make("vlmrm/Humanoid-v0", **SIZE, **switch)
    assert env.observation_space != vlmrm_envs.known_spaces("vlmrm/Humanoid-v0").observation_space
    assert vlmrm_envs.known_spaces("vlmrm/Humanoid-v0", **switch) is None
    env.close()


def test_known_spaces_import_no_mujoco():
    code = (
        "import vlmrm_envs\n"
        "known = vlmrm_envs.known_spaces('vlmrm/Humanoid-CLIP-v0', prompts=['a humanoid robot kneeling'])\n"
        "assert known.action_space.shape == (17,) and known.max_episode_steps == 100, known"
    )
    assert _heavy_modules_imported_by(code) == "[]"

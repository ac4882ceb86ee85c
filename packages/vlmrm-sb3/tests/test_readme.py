"""The README's quick start runs as written (paths moved to a temp dir), with a real tiny CLIP."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).parents[1] / "README.md"


def test_quick_start_runs(tmp_path, capsys):
    pytest.importorskip("vlmrm_reward", reason="the quick start uses vlmrm-reward's tiny CLIP")
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)[0]
    namespace: dict = {}
    exec(compile(code.replace("/tmp/", f"{tmp_path}/"), str(README), "exec"), namespace)
    assert capsys.readouterr().out.split() == ["300", "0", "(1,)"]

    # The first model's buffer, before the save: every reward is the CLIP reward of its own frame.
    env, reward_model = namespace["env"], namespace["reward_model"]
    trained = namespace["SAC"]("MlpPolicy", env, reward_model=reward_model, learning_starts=10**6, seed=0)
    frames = []
    scored = trained.reward_model

    def recording(batch: np.ndarray) -> np.ndarray:
        frames.append(batch)
        return scored(batch)

    trained.reward_model = recording
    trained.learn(200)
    assert [len(batch) for batch in frames] == [100, 100]
    assert frames[0].dtype == np.uint8 and frames[0].shape[1:] == (500, 500, 3)
    np.testing.assert_allclose(
        trained.replay_buffer.rewards[:200, 0], reward_model(np.concatenate(frames)), rtol=1e-5, atol=1e-6
    )
    reward_model.close()

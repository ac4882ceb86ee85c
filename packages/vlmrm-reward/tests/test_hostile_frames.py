"""Property-based: any array is either scored (finite rewards, one per frame) or refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

DTYPES = st.sampled_from([np.uint8, np.int8, np.int64, np.float16, np.float32, np.float64, np.bool_])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.one_of(
        arrays(DTYPES, array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6)),
        arrays(np.uint8, st.tuples(st.integers(0, 3), st.integers(1, 70), st.integers(1, 70), st.just(3))),
    ),
    as_tensor=st.booleans(),
)
def test_any_array_is_scored_or_refused_with_a_clear_error(reward_model, frames, as_tensor):
    if as_tensor:
        frames = torch.from_numpy(frames)
    try:
        rewards = reward_model(frames)
    except (ValueError, TypeError) as error:
        assert "frames" in str(error)  # the message names the culprit
        return
    expected = 1 if frames.ndim == 3 else frames.shape[0]
    assert rewards.shape == (expected,) and rewards.dtype == np.float32
    assert np.isfinite(rewards).all()


@pytest.mark.parametrize("value", [0, 255])
def test_extreme_pixel_values_give_finite_rewards(reward_model, value):
    frames = np.full((3, 50, 20, 3), value, dtype=np.uint8)
    assert np.isfinite(reward_model(frames)).all()


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
def test_a_thin_frame_is_preprocessed_without_a_huge_intermediate(resize_mode):
    """A 1x4000 frame scaled so that its short side fits 224 would be 224x896000 floats (2.4 GB)
    before the crop; only the part the crop keeps is resized. Measured in a process of its own."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import resource, torch
        from vlmrm_reward.preprocess import PreprocessConfig, preprocess_frames

        config = PreprocessConfig(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode={resize_mode!r})
        preprocess_frames(torch.full((1, 20, 20, 3), 7, dtype=torch.uint8), config)  # warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = preprocess_frames(torch.full((1, 1, 4000, 3), 7, dtype=torch.uint8), config)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert tuple(out.shape) == (1, 3, 224, 224) and bool(torch.isfinite(out).all()), out.shape
        print(grown_mb)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 100, f"preprocessing grew the process by {float(result.stdout):.0f} MB"

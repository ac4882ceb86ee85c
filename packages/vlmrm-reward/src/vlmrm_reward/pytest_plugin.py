"""pytest fixtures for projects that test against a real (tiny) open_clip model.

Loaded automatically by pytest wherever vlmrm-reward is installed (the ``pytest11`` entry point).
"""

from __future__ import annotations

import pytest

from vlmrm_reward.testing import make_tiny_open_clip


@pytest.fixture(scope="session")
def tiny_model_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``"local-dir:<folder>"`` of a tiny random open_clip model, built once per test session."""
    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny_open_clip"))

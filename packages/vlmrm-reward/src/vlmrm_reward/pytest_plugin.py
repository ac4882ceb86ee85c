"""pytest fixtures for projects that test against a real (tiny) open_clip model.

Loaded automatically by pytest wherever vlmrm-reward is installed (the ``pytest11`` entry point), so
it imports torch and open_clip only when a test uses the fixture: other projects' test runs stay fast.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``"local-dir:<folder>"`` of a tiny random open_clip model, built once per test session."""
    from vlmrm_reward.testing import make_tiny_open_clip

    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny_open_clip"))

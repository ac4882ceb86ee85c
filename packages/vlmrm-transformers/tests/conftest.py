from __future__ import annotations

import pytest
from vlmrm_transformers import testing


@pytest.fixture(scope="session")
def tiny_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``"hf:<folder>"`` of each tiny random model family, built once per test session."""
    root = tmp_path_factory.mktemp("tiny_transformers")
    return {
        family: getattr(testing, f"make_tiny_{family}")(root / family)
        for family in ("clip", "siglip", "siglip2", "xclip", "llava")
    }

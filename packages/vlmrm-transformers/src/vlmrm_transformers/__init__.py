"""vlmrm-transformers: Hugging Face transformers models as vlmrm reward models.

Installed, it adds the ``transformers`` backend to ``vlmrm_reward.load_reward_model``:

>>> reward_model = load_reward_model(
...     "hf:google/siglip-base-patch16-224",
...     backend="transformers",
...     target_prompts=["a humanoid robot kneeling"],
... )  # doctest: +SKIP
"""

import importlib.metadata

from vlmrm_transformers.image_text import ImageTextBackend
from vlmrm_transformers.judge import VLMJudgeBackend
from vlmrm_transformers.plugin import BACKEND_NAME, load_transformers
from vlmrm_transformers.video import VideoTextBackend

# The version lives in pyproject.toml only; installed metadata carries it here.
__version__ = importlib.metadata.version("vlmrm-transformers")

__all__ = ["BACKEND_NAME", "ImageTextBackend", "VLMJudgeBackend", "VideoTextBackend", "load_transformers"]

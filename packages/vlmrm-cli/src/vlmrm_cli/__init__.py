"""vlmrm-cli: the ``vlmrm`` command. ``vlmrm train config.yaml`` trains an RL agent whose reward
is the CLIP similarity of its rendered frames to a sentence, and leaves a run folder with the
resolved config, checkpoints, TensorBoard events, videos and the final model.

The pieces are importable too: :func:`vlmrm_cli.config.load_config` validates a config,
:func:`vlmrm_cli.training.train` runs one.
"""

import importlib.metadata

# The version lives in pyproject.toml only; installed metadata carries it here.
__version__ = importlib.metadata.version("vlmrm-cli")

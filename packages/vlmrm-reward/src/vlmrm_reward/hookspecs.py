"""pluggy hook specifications: how a package adds a VLM backend to vlmrm.

A backend plugin is a module (or object) with a ``register_backends`` hook implementation,
advertised under the ``vlmrm`` entry-point group::

    # pyproject.toml of a third-party package
    [project.entry-points.vlmrm]
    my_backend = "my_package.vlmrm_plugin"

    # my_package/vlmrm_plugin.py
    from vlmrm_reward import hookimpl

    @hookimpl
    def register_backends(register):
        register("my_backend", load_my_backend)

``load_my_backend(model: str, *, cache_dir: str | None)`` returns an object satisfying one of
:class:`vlmrm_reward.Backend` (image and text embeddings: the goal-baseline reward per frame),
:class:`vlmrm_reward.VideoBackend` (clip and text embeddings: rewards of whole episodes) or
:class:`vlmrm_reward.JudgeBackend` (a yes/no question per frame); which one decides the reward
model :func:`vlmrm_reward.load_reward_model` builds. The built-in open_clip backend is registered in
exactly this way (see ``vlmrm_reward.open_clip_backend``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from vlmrm_reward.backend import BackendLoader

PROJECT_NAME = "vlmrm"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[str, BackendLoader], None]) -> None:
    """Call ``register(name, loader)`` once for every backend this plugin provides."""

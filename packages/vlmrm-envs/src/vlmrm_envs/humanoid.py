"""The paper's Humanoid: no unhealthy termination, a fixed camera that frames the body, and a
textured scene (a sky with clouds, dark grey stone floor tiles, a light metallic robot) that CLIP
recognises better than the stock brown-on-checkerboard look. Rocamonde et al. (2024) report kneeling success rising from
36% (stock look) to 91% (textures) and 100% (textures + this camera) with ViT-bigG-14.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from vlmrm_envs.rendering import (
    EGL_INSTALL_HINT,
    assign_render_device,
    check_mujoco_gl,
    check_mujoco_gl_can_render,
    check_renderer,
    nvidia_gpu_visible,
    render_report,
)
from vlmrm_envs.success import humanoid_kneeling  # imports mujoco only when called
from vlmrm_envs.textures import scene_textures

# A bad MUJOCO_GL makes `import mujoco` raise a terse error of its own; explain it first. So does a
# backend that cannot work here (OSMesa missing, glfw without a display).
check_mujoco_gl()
check_mujoco_gl_can_render()

import mujoco  # noqa: E402
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv as GymnasiumHumanoidEnv  # noqa: E402
from gymnasium.utils import EzPickle  # noqa: E402

__all__ = ["PAPER_CAMERA", "HumanoidEnv", "textured_humanoid_xml"]

PAPER_CAMERA: dict[str, Any] = {
    "distance": 3.5,
    "lookat": np.array([0.0, 0.0, 1.0]),
    "elevation": -10.0,
    "azimuth": 180.0,
}
"""The paper's best camera: free (not tracking), 3.5 m from (0, 0, 1), 10 degrees above the body."""

_CAMERA_KEYS = ("distance", "lookat", "elevation", "azimuth", "trackbodyid", "type", "fixedcamid")

# The research code's scene: image textures for the sky, the floor tiles (repeated 60 times over
# the 40 m floor) and the robot (shiny, as metal is), no reflective floor (a mirror doubles the
# body, which CLIP reads as two figures), and a white light straight from above.
_SCENE_ASSETS = """
<asset>
  <texture name="sky" type="skybox" file="sky.png"/>
  <texture name="texplane" type="2d" file="tiles.png"/>
  <texture name="texgeom" type="cube" file="robot.png"/>
  <material name="MatPlane" texture="texplane" texrepeat="60 60" reflectance="0" specular="0" shininess="0"/>
  <material name="geom" texture="texgeom" texuniform="true" specular="1" shininess="1"/>
</asset>
"""


def textured_humanoid_xml(xml_path: str) -> str:
    """Gymnasium's humanoid XML with the textured scene; its textures are :data:`TEXTURE_FILES`.

    Load it with ``mujoco.MjModel.from_xml_string(xml, scene_textures())``.
    """
    root = ET.parse(xml_path).getroot()
    old_assets = root.find("asset")
    if old_assets is not None:
        root.remove(old_assets)
    root.insert(0, ET.fromstring(_SCENE_ASSETS))
    # Geom rgba multiplies the texture colour: make it neutral so that the textures decide.
    for geom in [*root.iter("geom")]:
        if geom.get("rgba") is not None:
            geom.set("rgba", "1 1 1 1")
    for light in root.iter("light"):
        light.set("specular", ".5 .5 .5")
    return ET.tostring(root, encoding="unicode")


class HumanoidEnv(GymnasiumHumanoidEnv):
    """Gymnasium's Humanoid-v5 set up as in the paper, rendering ``rgb_array`` frames by default.

    Differences from ``Humanoid-v5``: unhealthy termination off (a kneeling or lying body is a
    valid goal state; ``vlmrm/Humanoid-v0`` ends every episode after 100 steps instead), the
    paper's camera (:data:`PAPER_CAMERA`), the textured scene, 480x480 frames (the research
    code's size), and GPU choice for headless EGL rendering. Frame skip stays 5 (15 ms of
    simulation per step).

    Args:
        render_mode: ``"rgb_array"`` (default), ``"depth_array"``, ``"human"`` or None (no rendering).
        width, height: frame size in pixels (default 480x480). Smaller frames render faster and
            show the same scene with less detail.
        camera: camera settings that override :data:`PAPER_CAMERA`, e.g. ``{"distance": 4.0}``;
            keys are ``MjvCamera`` attributes: distance, lookat, elevation, azimuth, trackbodyid,
            type, fixedcamid.
        textured: False renders the stock Gymnasium look (for ablations).
        texture_dir: a folder with the research code's images (``sky.png``, ``tiles.png``,
            ``robot.png``; any of them) to use instead of the generated ones
            (:mod:`vlmrm_envs.textures`).
        render_device: EGL device (GPU index) to render on; default ``MUJOCO_EGL_DEVICE_ID``; a vector
            env gives each worker its own (see :mod:`vlmrm_envs.rendering`).
        terminate_when_unhealthy, frame_skip, **kwargs: as for Gymnasium's Humanoid-v5.

    After the first frame, ``render_info`` holds :func:`vlmrm_envs.rendering.render_report`:
    where this env renders (read it from vector-env workers with ``get_attr("render_info")``).
    """

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        width: int = 480,
        height: int = 480,
        camera: dict[str, Any] | None = None,
        textured: bool = True,
        texture_dir: str | None = None,
        render_device: int | None = None,
        terminate_when_unhealthy: bool = False,
        frame_skip: int = 5,
        **kwargs: Any,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer (pixels), got {value!r}")
        camera_config = {**PAPER_CAMERA, **_check_camera(camera)}
        check_mujoco_gl()
        check_mujoco_gl_can_render()
        self.textured = textured
        if texture_dir is not None and not textured:
            raise ValueError("texture_dir needs textured=True")
        self.textures = scene_textures(texture_dir) if textured else {}
        self.render_device = assign_render_device(render_device)
        self.render_info: dict[str, Any] | None = None
        # Render from the free camera that camera_config sets up. Without a camera_id, Gymnasium
        # before 1.4 renders from the XML's fixed "track" camera and ignores camera_config entirely.
        if not {"camera_id", "camera_name"} & set(kwargs):
            kwargs["camera_id"] = -1
        super().__init__(
            frame_skip=frame_skip,
            default_camera_config=camera_config,
            terminate_when_unhealthy=terminate_when_unhealthy,
            render_mode=render_mode,
            width=width,
            height=height,
            **kwargs,
        )
        EzPickle.__init__(
            self,
            render_mode=render_mode,
            width=width,
            height=height,
            camera=camera,
            textured=textured,
            texture_dir=texture_dir,
            render_device=render_device,
            terminate_when_unhealthy=terminate_when_unhealthy,
            frame_skip=frame_skip,
            **kwargs,
        )

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        if not self.textured:
            return super()._initialize_simulation()
        model = mujoco.MjModel.from_xml_string(textured_humanoid_xml(self.fullpath), self.textures)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    # MujocoEnv.step is annotated with float64-only info, narrower than gymnasium.Env.step's
    # dict[str, Any]; this info also holds a bool ("is_success").
    def step(  # type: ignore[override]  # info values other than float64
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Humanoid-v5's step; ``info["is_success"]`` says whether the body now kneels.

        Kneeling is :func:`vlmrm_envs.success.humanoid_kneeling`, a pose proxy for the paper's
        human labels; an episode succeeds when it ends kneeling, which is the value SB3 reads.
        """
        observation, reward, terminated, truncated, info = super().step(action)
        return (
            observation,
            reward,
            terminated,
            truncated,
            {**info, "is_success": humanoid_kneeling(self.model, self.data)},
        )

    def render(self) -> np.ndarray | None:
        """The current frame: uint8 (height, width, 3) for ``render_mode="rgb_array"``."""
        if self.render_info is not None or self.render_mode in (None, "human"):
            frame = super().render()
        else:
            frame = self._first_render()
        return np.ascontiguousarray(frame) if self.render_mode == "rgb_array" else frame

    def _first_render(self) -> Any:
        """Render once, turning EGL failures into install hints and checking the GL renderer."""
        try:
            frame = super().render()
        except (ImportError, OSError, RuntimeError, AttributeError) as error:
            if os.environ.get("MUJOCO_GL") != "egl":
                raise
            raise RuntimeError(f"{EGL_INSTALL_HINT} ({type(error).__name__}: {error})") from error
        self.render_info = render_report()
        message = check_renderer(self.render_info["gl_renderer"] or "", nvidia_gpu_visible())
        if message is not None:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        return frame


def _check_camera(camera: dict[str, Any] | None) -> dict[str, Any]:
    if camera is None:
        return {}
    if not isinstance(camera, dict):
        raise TypeError(f"camera must be a dict of camera settings, got {type(camera).__name__}")
    unknown = sorted(set(camera) - set(_CAMERA_KEYS))
    if unknown:
        raise ValueError(f"camera has unknown setting(s) {unknown}; known: {', '.join(_CAMERA_KEYS)}")
    return {
        key: np.asarray(value, dtype=np.float64) if key == "lookat" else value
        for key, value in camera.items()
    }

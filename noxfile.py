"""Test and lint sessions: `nox` runs them all; `nox -s tests-reward` runs one package's tests.

Each test session installs only its package, the vlmrm packages it depends on, and its test
extra into its own venv, then checks that no forbidden dependency slipped into the runtime
dependency closure (see ARCHITECTURE.md for the allowed edges).
"""

from __future__ import annotations

import nox

nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# Other torch releases download gigabytes; these two lie on the CI machine's disk.
TORCH = ("torch==2.14.1", "torchvision==0.29.1")

# package -> (vlmrm packages it depends on, distributions its runtime closure must not contain)
PACKAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reward": ((), ("stable-baselines3", "mujoco", "wandb", "click")),
    "envs": (("reward",), ("stable-baselines3", "wandb", "click")),
    "sb3": ((), ("mujoco", "wandb", "click", "vlmrm-envs")),
    "cli": (("reward", "envs", "sb3"), ()),
    # A backend plugin, installed as a third party's would be: found through its entry point.
    "transformers": (
        ("reward",),
        ("stable-baselines3", "mujoco", "wandb", "click", "vlmrm-sb3", "vlmrm-envs"),
    ),
}
# vlmrm packages that only a package's tests need (sb3's README quick start scores with a real tiny
# CLIP; the CLI's tests score and train with the transformers plugin's video and judge models).
TEST_ONLY_DEPS: dict[str, tuple[str, ...]] = {"sb3": ("reward",), "cli": ("transformers",)}


def _make_test_session(package: str) -> None:
    local_deps, forbidden = PACKAGES[package]

    @nox.session(name=f"tests-{package}", python="3.11")
    def tests(session: nox.Session) -> None:
        session.install(*TORCH)
        session.install(
            *(f"./packages/vlmrm-{dep}" for dep in local_deps), f"./packages/vlmrm-{package}[test]"
        )
        session.run("python", ".ci/check_dependencies.py", f"vlmrm-{package}", *forbidden)
        test_only = TEST_ONLY_DEPS.get(package, ())
        if test_only:
            session.install(*(f"./packages/vlmrm-{dep}" for dep in test_only))
        # tests-cli also checks every Kubernetes manifest (kube/ and those `vlmrm sweep` writes) against
        # Kubernetes' schemas with kubernetes-validate (the cli test extra), and runs tests/, which
        # include `bench/gpu_check.py --smoke`.
        paths = [f"packages/vlmrm-{package}/tests"] + (["tests"] if package == "cli" else [])
        session.run("pytest", *paths, *session.posargs, env={"MUJOCO_GL": "egl"})


for _package in PACKAGES:
    _make_test_session(_package)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")

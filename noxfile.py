"""Test, type-check and lint sessions: `nox` runs them all; `nox -s tests-reward` runs one package's tests.

Each test session installs only its package, the vlmrm packages it depends on, and its test
extra into its own venv, then checks that no forbidden dependency slipped into the runtime
dependency closure (see ARCHITECTURE.md for the allowed edges).
"""

from __future__ import annotations

import glob
import os
import zipfile

import nox

nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# Other torch releases download gigabytes; these two lie on the CI machine's disk.
TORCH = ("torch==2.14.1", "torchvision==0.29.1")
# One install of TORCH (5.6 GB with its CUDA libraries) that every Python 3.11 venv here sees through a
# .pth file: six copies of it do not fit on the CI machine's disk.
SHARED_TORCH = os.path.join(".nox", "_shared-torch")

# package -> (vlmrm packages it depends on, distributions its runtime closure must not contain)
PACKAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reward": ((), ("stable-baselines3", "mujoco", "wandb", "click")),
    "envs": (("reward",), ("stable-baselines3", "wandb", "click")),
    "sb3": (
        (),
        ("mujoco", "wandb", "click", "vlmrm-reward", "vlmrm-envs", "vlmrm-cli", "open-clip-torch=open_clip"),
    ),
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


def _site_packages(session: nox.Session, python: str) -> str:
    command = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return session.run_install(python, "-c", command, external=True, silent=True).strip()


def use_shared_torch(session: nox.Session, python: str | None = None) -> None:
    """Make TORCH importable in the venv of ``python`` (the session's own by default) from SHARED_TORCH.

    SHARED_TORCH is made once, by whichever session needs it first. Its path goes at the end of the
    venv's sys.path, so pip counts torch and its dependencies as installed, and a package wanting a
    newer release of one of those dependencies gets it in its own venv ("Not uninstalling ... outside
    environment"), which comes first on sys.path; SHARED_TORCH itself is never changed.
    """
    shared = os.path.abspath(SHARED_TORCH)
    python_in_shared = os.path.join(shared, "bin", "python")
    done = os.path.join(shared, "installed.txt")
    wanted = "\n".join(TORCH) + "\n"
    if not (os.path.exists(done) and open(done).read() == wanted):
        session.run_install("python", "-m", "venv", "--clear", shared)
        session.run_install(python_in_shared, "-m", "pip", "install", "--quiet", *TORCH, external=True)
        with open(done, "w") as file:
            file.write(wanted)
    python = python or os.path.join(session.virtualenv.location, "bin", "python")
    with open(os.path.join(_site_packages(session, python), "shared_torch.pth"), "w") as file:
        file.write(_site_packages(session, python_in_shared) + "\n")


def _make_test_session(package: str) -> None:
    local_deps, forbidden = PACKAGES[package]

    @nox.session(name=f"tests-{package}", python="3.11")
    def tests(session: nox.Session) -> None:
        use_shared_torch(session)
        session.install(*(f"./packages/vlmrm-{dep}" for dep in local_deps), f"./packages/vlmrm-{package}")
        # Before the test extra and test-only packages, so that none of them hides a forbidden import.
        # A reused venv keeps them from the last run: nox -s tests-<pkg> --no-reuse-existing-virtualenvs
        # makes the check exact; CI's venvs are fresh.
        session.run("python", ".ci/check_dependencies.py", f"vlmrm-{package}", *forbidden)
        test_only = TEST_ONLY_DEPS.get(package, ())
        session.install(
            *(f"./packages/vlmrm-{dep}" for dep in test_only), f"./packages/vlmrm-{package}[test]"
        )
        # tests-cli also checks every Kubernetes manifest (kube/ and those `vlmrm sweep` writes) against
        # Kubernetes' schemas with kubernetes-validate (the cli test extra), and runs tests/, which
        # include `bench/gpu_check.py --smoke`.
        paths = [f"packages/vlmrm-{package}/tests"] + (["tests"] if package == "cli" else [])
        session.run("pytest", *paths, *session.posargs, env={"MUJOCO_GL": "egl"})


for _package in PACKAGES:
    _make_test_session(_package)


# End-to-end training tests that tests-lowest leaves out: they take most of vlmrm-cli's test time and
# call the same library functions as the quicker tests it runs.
SLOW_TESTS = {"cli": ("test_train.py", "test_signals.py", "test_reliability.py")}
PYPROJECTS = sorted(glob.glob("packages/vlmrm-*/pyproject.toml"))


@nox.session(name="tests-lowest", python="3.11")
def tests_lowest(session: nox.Session) -> None:
    """Every package with every third-party dependency at its declared floor (run by CI).

    Runs each package's tests except SLOW_TESTS: about 10 minutes on 2 cores, with the shared torch.
    torch is the exception to "floor": only 2.14.1 lies on the CI machine's disk (see RELEASING.md).
    """
    session.install("packaging")
    constraints = session.run_install(
        "python", ".ci/lowest_constraints.py", "--except", "torch", *PYPROJECTS, silent=True
    )
    path = os.path.join(session.create_tmp(), "lowest-constraints.txt")
    with open(path, "w") as file:
        file.write(constraints)
    session.log("constraints:\n" + constraints)
    use_shared_torch(session)
    session.install("-c", path, *(f"./packages/vlmrm-{package}[test]" for package in PACKAGES))
    # One pytest per package: their tests import helpers from their own conftest.py.
    for package in PACKAGES:
        paths = [f"packages/vlmrm-{package}/tests"] + (["tests"] if package == "cli" else [])
        skipped = SLOW_TESTS.get(package, ())
        ignores = [f"--ignore=packages/vlmrm-{package}/tests/{name}" for name in skipped]
        session.run("pytest", *paths, *ignores, *session.posargs, env={"MUJOCO_GL": "egl"})


@nox.session(name="tests-python", python=["3.10", "3.13"], default=False)
def tests_python(session: nox.Session) -> None:
    """The oldest and newest supported Pythons besides 3.11, on a representative subset: vlmrm-reward's
    and vlmrm-sb3's tests (the pure-Python logic most likely to meet version differences).

    Not run by default: each venv holds its own torch with its CUDA libraries (5.5 GB; the shared torch
    install serves Python 3.11 only), and each session takes about 6 minutes on a busy 2-core machine.
    """
    session.install(*TORCH)
    tested = ("reward", "sb3")
    session.install(*(f"./packages/vlmrm-{package}[test]" for package in tested))
    for package in tested:
        session.run("pytest", f"packages/vlmrm-{package}/tests", *session.posargs, env={"MUJOCO_GL": "egl"})


@nox.session(python="3.11")
def build(session: nox.Session) -> None:
    """The release check (RELEASING.md): each package's wheel, built on its own, holds its py.typed
    marker, installs into an empty venv from the wheels alone (siblings by their version ranges) and
    imports.

    The empty venvs see the shared torch install (use_shared_torch) and nothing else.
    """
    tmp = session.create_tmp()
    dist = os.path.join(tmp, "dist")
    session.install("build")
    for path in glob.glob(os.path.join(dist, "*.whl")):
        os.remove(path)
    for package in PACKAGES:
        session.run("python", "-m", "build", "--wheel", "--outdir", dist, f"packages/vlmrm-{package}")
    for package in PACKAGES:
        # py.typed: type checkers read the installed package's annotations (PEP 561).
        (wheel,) = glob.glob(os.path.join(dist, f"vlmrm_{package}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            if f"vlmrm_{package}/py.typed" not in archive.namelist():
                session.error(f"{os.path.basename(wheel)} has no vlmrm_{package}/py.typed")
    for package in PACKAGES:
        venv = os.path.join(tmp, f"empty-{package}")
        session.run("python", "-m", "venv", "--clear", venv)
        python = f"{venv}/bin/python"
        use_shared_torch(session, python)
        # Siblings come from dist/ only (--find-links), resolved by the version ranges in the wheel.
        session.run(
            python, "-m", "pip", "install", "--quiet", "--find-links", dist, f"vlmrm-{package}", external=True
        )
        module = f"vlmrm_{package}"
        session.run(
            python, "-c", f"import {module}; print({module}.__name__, {module}.__version__)", external=True
        )


# Stub packages for third-party modules that ship no type hints of their own.
TYPE_STUBS = ("types-PyYAML", "types-tqdm")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy over every package's src/ (settings and the untyped third-party modules: mypy.ini).

    One mypy run over all five packages rather than one per package: vlmrm-cli calls the other
    packages, and checking them together checks those calls against the sources being checked.
    The packages' tests/ are not type-checked. vlmrm-reward's test extra brings pytest, which its
    shipped pytest plugin imports.
    """
    use_shared_torch(session)
    session.install(
        "mypy>=1.11",
        *TYPE_STUBS,
        *(f"./packages/vlmrm-{package}" for package in PACKAGES if package != "reward"),
        "./packages/vlmrm-reward[test]",
    )
    session.run("mypy", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")

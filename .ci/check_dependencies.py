"""Fail if a vlmrm package depends on, or imports, a distribution it must stay free of.

usage: python .ci/check_dependencies.py DIST [FORBIDDEN[=MODULE] ...]

MODULE names the forbidden distribution's import name where it differs (open-clip-torch=open_clip).

Two checks, since a third-party dependency may itself need a forbidden distribution (e.g.
huggingface_hub needs click for its own command line) without our code ever touching it:
- DIST's declared runtime requirements (extras excluded) name none of FORBIDDEN;
- importing DIST's module and all its submodules imports none of FORBIDDEN's modules.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from importlib import metadata


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements(dist: str) -> set[str]:
    names = set()
    for requirement in metadata.requires(dist) or []:
        spec, _, marker = requirement.partition(";")
        if "extra ==" not in marker:
            names.add(_normalise(re.split(r"[\s\[<>=!~(]", spec.strip(), maxsplit=1)[0]))
    return names


def imported_modules(dist: str, forbidden_modules: set[str]) -> set[str]:
    """Top-level modules in ``sys.modules`` after importing DIST's module and all its submodules.

    A submodule that needs a module which is not installed (test helpers needing pytest, before
    the test extra is installed) is passed over, unless the missing module is a forbidden one.
    """
    package = importlib.import_module(dist.replace("-", "_"))
    missing = set()
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        if info.name.rpartition(".")[2] == "__main__":  # running it would start the command line
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as error:
            top = (error.name or "").partition(".")[0]
            if top not in forbidden_modules:
                continue
            missing.add(top)
    return {name.partition(".")[0] for name in sys.modules} | missing


def main() -> int:
    dist, *forbidden = sys.argv[1:]
    module_of = {}
    for argument in forbidden:
        name, _, module = argument.partition("=")
        module_of[_normalise(name)] = module or _normalise(name).replace("-", "_")
    forbidden_dists = set(module_of)
    failures = []
    declared = sorted(declared_requirements(dist) & forbidden_dists)
    if declared:
        failures.append(f"{dist} declares a dependency on {', '.join(declared)}")
    modules = imported_modules(dist, set(module_of.values()))
    imported = sorted(name for name in forbidden_dists if module_of[name] in modules)
    if imported:
        failures.append(f"importing {dist} imports {', '.join(imported)}")
    for failure in failures:
        print(failure, file=sys.stderr)
    if not failures:
        print(
            f"{dist}: neither declares nor imports {', '.join(sorted(forbidden_dists)) or '(nothing forbidden)'}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

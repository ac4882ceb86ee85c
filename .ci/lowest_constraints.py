"""Print pip constraints that pin every third-party dependency of the vlmrm packages to its floor.

usage: python .ci/lowest_constraints.py [--except NAME ...] packages/vlmrm-*/pyproject.toml > constraints.txt

For each runtime and `test` requirement with a `>=` lower bound, prints `name==floor` (the lowest of
the floors when packages disagree, so the check fails if one package's floor is lower than another's
real need). Requirements without a floor, the vlmrm packages themselves and each `--except NAME`
are left to pip.
`nox -s tests-lowest` installs the packages under these constraints and runs the tests, which proves
the floors in pyproject.toml work together.
"""

from __future__ import annotations

import argparse
import re
import sys

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(pyproject_paths: list[str]) -> dict[str, Version]:
    lowest: dict[str, Version] = {}
    for path in pyproject_paths:
        with open(path, "rb") as file:
            project = tomllib.load(file)["project"]
        requirements = project["dependencies"] + project.get("optional-dependencies", {}).get("test", [])
        for line in requirements:
            requirement = Requirement(line)
            name = _normalise(requirement.name)
            if name.startswith("vlmrm-"):
                continue
            for specifier in requirement.specifier:
                if specifier.operator == ">=":
                    floor = Version(specifier.version)
                    lowest[name] = min(lowest.get(name, floor), floor)
    return lowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--except", dest="excepted", action="append", default=[], metavar="NAME")
    parser.add_argument("pyprojects", nargs="+")
    args = parser.parse_args()
    excepted = {_normalise(name) for name in args.excepted}
    for name, floor in sorted(floors(args.pyprojects).items()):
        if name not in excepted:
            print(f"{name}=={floor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The top-level README's claims point at tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_every_test_named_in_the_reliability_table_exists() -> None:
    section = README[README.index("## Reliability") : README.index("## Docker and Kubernetes")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "proved by" not in line]
    assert len(rows) >= 10
    for row in rows:
        proof = row.rsplit("|", 2)[1]
        current = None  # a bare `::name` refers to the file named before it in the row
        references = re.findall(r"`((?:packages/[\w/.-]+/)?test_\w+\.py)?(?:::(\w+))?`", proof)
        assert references, row
        for file, name in references:
            if file:
                current = file if "/" in file else f"packages/vlmrm-cli/tests/{file}"
            assert current, row
            text = (REPO / current).read_text()
            if name:
                assert re.search(rf"^def {name}\(", text, re.MULTILINE), f"{current}::{name}"

"""bench/learning.py --replot: the learning curves in bench/figures redraw, and the figures the
vlmrm-cli README quotes are the ones their CSVs hold.

Cross-package: bench/ + vlmrm-cli (learning curves) + the README.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "packages" / "vlmrm-cli" / "README.md").read_text()
# The README's table rows, by the method they describe.
README_ROWS = {
    "clip": "on the CLIP reward",
    "ground_truth": "on the ground-truth reward",
    "random": "random policy",
}


def _replot(csv_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "learning.py"), "--replot", str(csv_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("task", ["cartpole", "mountain_car"])
def test_replot_redraws_the_curves_the_readme_quotes(task: str, tmp_path: Path) -> None:
    csv_path = tmp_path / f"learning_{task}.csv"
    shutil.copy(ROOT / "bench" / "figures" / csv_path.name, csv_path)
    completed = _replot(csv_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert iio.imread(csv_path.with_suffix(".png")).ndim == 3
    tables = README[
        README.index(f"bench/learning.py{' --task mountain_car' if task != 'cartpole' else ''} --steps") :
    ]
    table = tables[: tables.index("![")]
    for method, words in README_ROWS.items():
        printed = re.search(rf"^{method}\s+(\S+) \+- (\S+)\s+(\S+) \+- (\S+)", completed.stdout, re.MULTILINE)
        assert printed, completed.stdout
        row = next(line for line in table.splitlines() if words in line)
        assert " | ".join(f"{printed[i]} +- {printed[i + 1]}" for i in (1, 3)) in row, (row, printed[0])


@pytest.mark.parametrize(
    "text",
    [
        "task,method,seed,step,ground_truth_return,success_rate\nchess,clip,0,0,1,1\n",
        "task,method,seed,step,ground_truth_return,success_rate\ncartpole,clip,zero,0,1,1\n",
        "a,b\n1,2\n",
        "",
    ],
    ids=["other task", "bad number", "other columns", "empty"],
)
def test_replot_refuses_a_csv_it_did_not_write(text: str, tmp_path: Path) -> None:
    stranger = tmp_path / "other.csv"
    stranger.write_text(text)
    completed = _replot(stranger)
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{stranger}: not a CSV written by bench/learning.py"), (
        lines
    )
    assert not stranger.with_suffix(".png").exists()

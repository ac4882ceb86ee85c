"""The README's quick start runs as written (with its model folders moved to a temp dir)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_quick_start_runs(tmp_path, capsys):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)[0]
    code = code.replace("/tmp/", f"{tmp_path}/")
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[") and "Does this image show a humanoid robot kneeling?" in printed[-1]
    assert printed[1].startswith("[array(") and "dtype=float32)]" in printed[-2]

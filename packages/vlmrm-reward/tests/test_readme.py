"""The package README's quick start runs as written (with its model folder moved to a temp dir)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_quick_start_runs(tmp_path, capsys):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)[0]
    exec(compile(code.replace("/tmp/tiny-clip", str(tmp_path / "tiny-clip")), str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[") and "(400, 600, 3)" in printed[-1]

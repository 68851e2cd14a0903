"""The README's Python quick start runs unchanged (but for the URL)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.database

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_quick_start(database_url, tmp_path):
    text = README.read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("postgresql://postgres@127.0.0.1:5432/postgres", database_url)
    script = tmp_path / "quick_start.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "42 42 42 (42, 'x') True"

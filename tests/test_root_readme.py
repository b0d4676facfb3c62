"""The Python example in README.md runs as written (an example that is not run drifts)."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from helpers import REPO, shared_file


def test_readme_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    shared_file("online_retail/online_retail.csv.gz")
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python example"
    example = REPO / "examples" / "online_retail"
    shutil.rmtree(example / "warehouse", ignore_errors=True)
    shutil.rmtree(example / "state", ignore_errors=True)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "'rows_read': 541909" in printed
    assert "'rows_quarantined': 2517" in printed

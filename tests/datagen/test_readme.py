"""The README's example runs as written (an example that is not run drifts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jingzhun.core import SourceSpec

README = Path(__file__).resolve().parents[2] / "src" / "jingzhun" / "datagen" / "README.md"


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert (tmp_path / "data" / "generated" / "order_lines.parquet").exists()
    for spec in (tmp_path / "sources").glob("*.yml"):
        SourceSpec.model_validate(yaml.safe_load(spec.read_text()))
    assert len(list((tmp_path / "sources").glob("gen_*.yml"))) == 4

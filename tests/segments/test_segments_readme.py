"""Every YAML example in the segments README parses without a problem (docs that run)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from helpers import REPO
from jingzhun.segments import parse_segment

README = REPO / "src" / "jingzhun" / "segments" / "README.md"


def test_every_yaml_block_is_a_valid_segment() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        data = yaml.safe_load(block)
        spec, problems = parse_segment(data, file=Path("README.md"))
        assert not problems, (block, problems)
        assert spec is not None and spec.name == data["name"]


def test_the_bank_block_is_the_example_file() -> None:
    text = README.read_text()
    example = (REPO / "examples" / "bank" / "segments" / "credit_card_offer.yml").read_text()
    rule = example[example.index("name:") :]
    assert rule.strip() in text

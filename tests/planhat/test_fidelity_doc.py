"""docs/planhat-fidelity.md stays true: every sandbox behaviour it lists names a source or
says "assumed", and every test it names exists, so the page cannot point at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "planhat-fidelity.md"
TEST = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def rows() -> list[list[str]]:
    table = [line for line in PAGE.read_text().splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table]
    return [row for row in cells if row[0] != "behaviour"]


def test_every_behaviour_has_a_source_or_says_it_is_assumed() -> None:
    found = rows()
    assert len(found) > 50
    for behaviour, source, test in found:
        assert (
            "assumed" in source
            or "inference" in source
            or re.search(r"https?://|\w+/[\w.-]+|\.md|RFC", source)
        ), behaviour
        assert TEST.search(test), behaviour


def test_every_test_the_page_names_exists() -> None:
    missing = []
    for _, _, tests in rows():
        for path, name in TEST.findall(tests):
            source = ROOT / path
            if not source.exists() or not re.search(rf"def {name}\(", source.read_text()):
                missing.append(f"{path}::{name}")
    assert missing == []

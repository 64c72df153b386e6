"""The code stays readable in small pieces: modules and functions past these sizes get split, not waved through."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("container", "model", "serve", "train", "bench")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_and_function_is_small_enough_to_read_in_one_go(path: Path) -> None:
    source = path.read_text()
    too_long = []
    if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
        too_long.append(f"the module has {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{node.name} (line {node.lineno}) has {length} lines (at most {MAX_FUNCTION_LINES})")
    assert not too_long, f"{path.relative_to(REPO)}: split it: " + "; ".join(too_long)

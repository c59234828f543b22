"""No `assert` statement guards anything in the shipped code: `python -O` strips them.

A broken invariant raises `InvariantViolation` (or goes through `require`), which survives every
interpreter flag; an expected problem is a `Rejected` with a code. Tests may assert freely.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "tally"


def test_no_assert_statements_under_src() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path in sorted(SOURCE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if isinstance(node, ast.Assert)
    ]
    assert found == [], f"replace with require(...) or an explicit InvariantViolation: {found}"

"""`float` never touches money or quantities: this scans the code that handles them.

The core, the use cases and the PostgreSQL adapter may not mention `float`, call `float()`, or
contain a float literal, except where listed below with the reason (time spent waiting, never money).
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "tally"
SCANNED = ("core", "app", "adapters/postgres")

# file (relative to src/tally) → why floats are fine there
ALLOWED = {
    "adapters/postgres/connections.py": "retry backoff in seconds",
    "app/api_keys.py": "authentication cache lifetime in seconds",
}


def _float_uses(tree: ast.AST) -> list[int]:
    # `isinstance(value, float)` is how money code refuses floats; it is not a use.
    refusals = {
        id(argument)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
        for argument in node.args[1:]
    }
    return [node.lineno for node in ast.walk(tree) if _is_float_use(node, refusals)]


def _is_float_use(node: ast.AST, refusals: set[int]) -> bool:
    match node:
        case ast.Name(id="float"):
            return id(node) not in refusals
        case ast.Constant(value=float()):
            return True
        case ast.Attribute(attr="fromfloat" | "from_float"):
            return True
    return False


def test_no_float_in_money_and_quantity_paths() -> None:
    offenders = []
    for folder in SCANNED:
        for path in sorted((SOURCE / folder).rglob("*.py")):
            relative = path.relative_to(SOURCE).as_posix()
            if relative in ALLOWED:
                continue
            for line in _float_uses(ast.parse(path.read_text(), filename=str(path))):
                offenders.append(f"{relative}:{line}")
    assert offenders == [], f"float used in money/quantity code: {offenders}"


def test_the_scan_catches_floats() -> None:
    assert _float_uses(ast.parse("x: float = 1.5\ny = float('2')\nz = Decimal.from_float(y)")) == [1, 1, 2, 3]
    assert _float_uses(ast.parse("if isinstance(v, float): raise TypeError")) == []
